package image

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validMetadata() Metadata {
	return Metadata{Name: "img", DiskFormat: "diskdump", ContainerFormat: "bare",
		Properties: map[string]string{"osfamily": "linux"}, Members: []string{"0d9ba6e8-4b8c-4a4c-9d55-6b3d1f0a8f21"}}
}

func manyProperties(n int) map[string]string {
	p := map[string]string{}
	for i := range n {
		p[fmt.Sprintf("p%02d", i)] = "v"
	}
	return p
}

func TestValidateAccepts(t *testing.T) {
	cases := map[string]func(*Metadata){
		"as is":                         func(*Metadata) {},
		"every disk format":             func(m *Metadata) { m.DiskFormat = "ntfsdump" },
		"every container format":        func(m *Metadata) { m.ContainerFormat = "ovf" },
		"93-character key":              func(m *Metadata) { m.Properties = map[string]string{strings.Repeat("k", 93): "v"} },
		"93 non-ASCII characters":       func(m *Metadata) { m.Properties = map[string]string{strings.Repeat("κ", 93): "v"} },
		"256-character value":           func(m *Metadata) { m.Properties["x"] = strings.Repeat("v", 256) },
		"256 non-ASCII characters":      func(m *Metadata) { m.Properties["x"] = strings.Repeat("é", 256) },
		"256-character name":            func(m *Metadata) { m.Name = strings.Repeat("n", 256) },
		"28 properties":                 func(m *Metadata) { m.Properties = manyProperties(28) },
		"no properties, no members":     func(m *Metadata) { m.Properties, m.Members = nil, nil },
		"names with spaces and symbols": func(m *Metadata) { m.Name = `my "img" #1 %20 ? ünï` },
		"256-byte member":               func(m *Metadata) { m.Members = []string{strings.Repeat("u", 256)} },
		"value with newline":            func(m *Metadata) { m.Properties["x"] = "line1\nline2" },
	}
	for name, mod := range cases {
		md := validMetadata()
		mod(&md)
		assert.NoError(t, Validate(&md), name)
	}
}

func TestValidateProblems(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Metadata)
		want []string
	}{
		{"empty name", func(m *Metadata) { m.Name = "" },
			[]string{`name: is empty; Plankton requires a name: set "name" in the image's metafile or a template`}},
		{"blank name", func(m *Metadata) { m.Name = "  " },
			[]string{`name: is empty; Plankton requires a name: set "name" in the image's metafile or a template`}},
		{"name not UTF-8", func(m *Metadata) { m.Name = "caf\xe9.diskdump" },
			[]string{`name: "caf\xe9.diskdump" is not valid UTF-8; rename the file or set "name" in its metafile`}},
		{"name too long", func(m *Metadata) { m.Name = strings.Repeat("ν", 257) },
			[]string{`name: is 257 characters; Plankton stores at most 256: shorten it`}},
		{"name with newline", func(m *Metadata) { m.Name = "a\nb" },
			[]string{`name: "a\nb" contains control characters (such as a newline); remove them`}},
		{"unknown disk format", func(m *Metadata) { m.DiskFormat = "qcow2" },
			[]string{`disk-format: unknown disk format "qcow2"; use one of: diskdump, extdump, ntfsdump`}},
		{"empty disk format", func(m *Metadata) { m.DiskFormat = "" },
			[]string{`disk-format: unknown disk format ""; use one of: diskdump, extdump, ntfsdump`}},
		{"disk format is case-sensitive", func(m *Metadata) { m.DiskFormat = "DiskDump" },
			[]string{`disk-format: unknown disk format "DiskDump"; use one of: diskdump, extdump, ntfsdump`}},
		{"unknown container format", func(m *Metadata) { m.ContainerFormat = "docker" },
			[]string{`container-format: unknown container format "docker"; use one of: aki, ari, ami, bare, ovf`}},
		{"key too long", func(m *Metadata) { m.Properties = map[string]string{strings.Repeat("k", 94): "v"} },
			[]string{fmt.Sprintf(`properties.%s: the property name is 94 characters; Plankton allows at most 93 (111 with its "plankton:property:" prefix): shorten it`, strings.Repeat("k", 94))}},
		{"key not normalised", func(m *Metadata) { m.Properties = map[string]string{"OS-Type": "v"} },
			[]string{`properties.OS-Type: the property name is not normalised (Plankton would store it as "os_type"); write it so`}},
		{"empty key", func(m *Metadata) { m.Properties = map[string]string{"": "v"} },
			[]string{`properties.: the property name is empty; give it a name`}},
		{"key not UTF-8", func(m *Metadata) { m.Properties = map[string]string{"k\xff": "v"} },
			[]string{`properties."k\xff": the property name is not valid UTF-8; rename it`}},
		{"key with a tab", func(m *Metadata) { m.Properties = map[string]string{"a\tb": "v"} },
			[]string{"properties.a\tb: the property name contains control characters; remove them"}},
		{"value too long", func(m *Metadata) { m.Properties["x"] = strings.Repeat("é", 257) },
			[]string{`properties.x: the value is 257 characters; Plankton stores at most 256: shorten it`}},
		{"value not UTF-8", func(m *Metadata) { m.Properties["x"] = "\xc3" },
			[]string{`properties.x: the value is not valid UTF-8; save the metafile as UTF-8`}},
		{"empty value", func(m *Metadata) { m.Properties["x"] = "" },
			[]string{`properties.x: the value is empty; Plankton cannot store an empty value (an empty value removes the property): remove it or give it a value`}},
		{"NUL in value", func(m *Metadata) { m.Properties["x"] = "a\x00b" },
			[]string{`properties.x: the value contains a NUL character; remove it`}},
		{"29 properties", func(m *Metadata) { m.Properties = manyProperties(29) },
			[]string{`properties: 29 properties; Plankton stores at most 28 per image (32 metadata items, of which name, disk_format, container_format and created_at take 4): remove 1, or remove inherited ones with "key": null`}},
		{"empty member", func(m *Metadata) { m.Members = []string{"u1", ""} },
			[]string{`members[1]: is empty; give a user uuid`}},
		{"member with a comma", func(m *Metadata) { m.Members = []string{"u1,u2"} },
			[]string{`members[0]: "u1,u2" is not a user uuid (it contains a space, control character, ',', ';' or '='); list one uuid per entry`}},
		{"member with a space", func(m *Metadata) { m.Members = []string{"u1 u2"} },
			[]string{`members[0]: "u1 u2" is not a user uuid (it contains a space, control character, ',', ';' or '='); list one uuid per entry`}},
		{"member with a semicolon", func(m *Metadata) { m.Members = []string{"u1;write=u2"} },
			[]string{`members[0]: "u1;write=u2" is not a user uuid (it contains a space, control character, ',', ';' or '='); list one uuid per entry`}},
		{"member star", func(m *Metadata) { m.Members = []string{"*"} },
			[]string{`members[0]: "*" means everybody; set "is-public": true instead`}},
		{"member too long", func(m *Metadata) { m.Members = []string{strings.Repeat("u", 257)} },
			[]string{`members[0]: is 257 bytes, more than the 256 a user uuid may have`}},
		{"member not UTF-8", func(m *Metadata) { m.Members = []string{"\xff"} },
			[]string{`members[0]: is not valid UTF-8; give a user uuid`}},
		{"member twice", func(m *Metadata) { m.Members = []string{"u1", "u2", "u1"} },
			[]string{`members[2]: "u1" is listed twice; list it once`}},
		{"every problem at once", func(m *Metadata) {
			m.Name, m.DiskFormat, m.ContainerFormat = "", "raw", "tar"
			m.Properties = manyProperties(29)
			m.Properties["p00"] = ""
			m.Members = []string{""}
		}, []string{
			`name: is empty; Plankton requires a name: set "name" in the image's metafile or a template`,
			`disk-format: unknown disk format "raw"; use one of: diskdump, extdump, ntfsdump`,
			`container-format: unknown container format "tar"; use one of: aki, ari, ami, bare, ovf`,
			`properties.p00: the value is empty; Plankton cannot store an empty value (an empty value removes the property): remove it or give it a value`,
			`properties: 29 properties; Plankton stores at most 28 per image (32 metadata items, of which name, disk_format, container_format and created_at take 4): remove 1, or remove inherited ones with "key": null`,
			`members[0]: is empty; give a user uuid`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			md := validMetadata()
			c.mod(&md)
			err := Validate(&md)
			require.Error(t, err)
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.String())
			}
			assert.Equal(t, c.want, got)
			noun := "problems"
			if len(c.want) == 1 {
				noun = "problem"
			}
			assert.Equal(t, fmt.Sprintf("invalid image metadata (%d %s): %s", len(c.want), noun, strings.Join(c.want, "; ")), err.Error())
		})
	}
}

func TestResolvedValidateNamesSources(t *testing.T) {
	r, err := Resolve(ResolveInput{
		RelPath:   "a/x.diskdump",
		Defaults:  mf(t, "config watch[0].defaults", `{"members":["u 1"]}`),
		Templates: []*Metafile{mf(t, "images/a/_template.meta", `{"disk-format":"qcow2","properties":{"k":"`+strings.Repeat("v", 300)+`"}}`)},
		PerImage:  mf(t, "images/a/x.diskdump.meta", `{"name":"  "}`),
	})
	require.NoError(t, err)
	err = r.Validate()
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, []Problem{
		{Field: "name", Source: "images/a/x.diskdump.meta", Msg: `is empty; Plankton requires a name: set "name" in the image's metafile or a template`},
		{Field: "disk-format", Source: "images/a/_template.meta", Msg: `unknown disk format "qcow2"; use one of: diskdump, extdump, ntfsdump`},
		{Field: "properties.k", Source: "images/a/_template.meta", Msg: `the value is 300 characters; Plankton stores at most 256: shorten it`},
		{Field: "members[0]", Source: "config watch[0].defaults", Msg: `"u 1" is not a user uuid (it contains a space, control character, ',', ';' or '='); list one uuid per entry`},
	}, ve.Problems)
	assert.Contains(t, err.Error(), `disk-format (set in images/a/_template.meta): unknown disk format "qcow2"`)

	// A file name that is not UTF-8 becomes the built-in name.
	r, err = Resolve(ResolveInput{RelPath: "caf\xe9.diskdump"})
	require.NoError(t, err)
	assert.EqualError(t, r.Validate(), `invalid image metadata (1 problem): name (set in built-in default): "caf\xe9.diskdump" is not valid UTF-8; rename the file or set "name" in its metafile`)

	r, err = Resolve(ResolveInput{RelPath: "ok.diskdump"})
	require.NoError(t, err)
	assert.NoError(t, r.Validate())
}
