package image

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func ptr[T any](v T) *T { return &v }

// kamakiMeta is the .meta kamaki 0.17 uploads after `image register`
// (reference: kamaki-client-notes §5.4), in Python 2's json.dumps layout.
const kamakiMeta = `{
  "status": "AVAILABLE", 
  "name": "My Img", 
  "is-snapshot": "False", 
  "checksum": "abc", 
  "description": "", 
  "updated-at": "2015-01-01 00:00:00", 
  "created-at": "2015-01-01 00:00:00", 
  "properties": {
    "osfamily": "linux", 
    "root_partition": "1"
  }, 
  "deleted-at": "", 
  "location": "pithos://uuid-1/images/up/local.img", 
  "is-public": "False", 
  "owner": "uuid-1 (user@example.org)", 
  "disk-format": "diskdump", 
  "container-format": "bare", 
  "id": "img-1", 
  "size": "50"
}`

func TestParseMetafileKamakiDownloaded(t *testing.T) {
	m, err := ParseMetafile("images/up/local.img.meta", []byte(kamakiMeta))
	require.NoError(t, err)
	assert.Equal(t, "images/up/local.img.meta", m.Source)
	assert.Equal(t, ptr("My Img"), m.Name)
	assert.Equal(t, ptr("diskdump"), m.DiskFormat)
	assert.Equal(t, ptr("bare"), m.ContainerFormat)
	assert.Equal(t, ptr(false), m.IsPublic)
	assert.Equal(t, map[string]*string{"osfamily": ptr("linux"), "root_partition": ptr("1")}, m.Properties)
	assert.False(t, m.MembersSet)

	// Every server-set field is ignored with a warning naming it and its line.
	var got []string
	for _, w := range m.Warnings {
		got = append(got, w.String())
	}
	assert.Equal(t, []string{
		`images/up/local.img.meta:2:3: field "status": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:4:3: field "is-snapshot": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:5:3: field "checksum": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:6:3: field "description": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:7:3: field "updated-at": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:8:3: field "created-at": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:13:3: field "deleted-at": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:14:3: field "location": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:16:3: field "owner": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:19:3: field "id": ignored: set by the server, not by a metafile`,
		`images/up/local.img.meta:20:3: field "size": ignored: set by the server, not by a metafile`,
	}, got)
}

func TestParseMetafileVariants(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Metafile // Source and Warnings are not compared
	}{
		{"empty object", `{}`, Metafile{}},
		{"dashed keys", `{"name":"n","disk-format":"extdump","container-format":"ovf","is-public":true}`,
			Metafile{Name: ptr("n"), DiskFormat: ptr("extdump"), ContainerFormat: ptr("ovf"), IsPublic: ptr(true)}},
		{"underscored keys", `{"disk_format":"ntfsdump","container_format":"ami","is_public":false}`,
			Metafile{DiskFormat: ptr("ntfsdump"), ContainerFormat: ptr("ami"), IsPublic: ptr(false)}},
		{"case variants", `{"Name":"n","DISK_FORMAT":"diskdump","Container-Format":"bare","IS-PUBLIC":"TRUE"}`,
			Metafile{Name: ptr("n"), DiskFormat: ptr("diskdump"), ContainerFormat: ptr("bare"), IsPublic: ptr(true)}},
		{"is-public True string", `{"is-public":"True"}`, Metafile{IsPublic: ptr(true)}},
		{"is-public false string", `{"is-public":"false"}`, Metafile{IsPublic: ptr(false)}},
		{"is-public padded string", `{"is-public":" False "}`, Metafile{IsPublic: ptr(false)}},
		{"null fields are unset", `{"name":null,"disk-format":null,"is-public":null,"properties":null,"members":null}`, Metafile{}},
		{"empty strings are set", `{"name":"","disk-format":""}`, Metafile{Name: ptr(""), DiskFormat: ptr("")}},
		{"number name taken as written", `{"name":2024.10}`, Metafile{Name: ptr("2024.10")}},
		{"property values of every scalar kind",
			`{"properties":{"OS":"linux","Version":22.04,"big":1e400,"ssh":true,"gone":null,"empty":""}}`,
			Metafile{Properties: map[string]*string{"os": ptr("linux"), "version": ptr("22.04"), "big": ptr("1e400"),
				"ssh": ptr("true"), "gone": nil, "empty": ptr("")}}},
		{"property keys normalised", `{"properties":{"OS-Type":"a","Root.Partition":"1","x:y":"z"}}`,
			Metafile{Properties: map[string]*string{"os_type": ptr("a"), "root_partition": ptr("1"), "x_y": ptr("z")}}},
		{"non-ASCII key lowercased, value kept", `{"properties":{"ΣΥΣΤΗΜΑ":"Ελληνικά"}}`,
			Metafile{Properties: map[string]*string{"συστημα": ptr("Ελληνικά")}}},
		{"members", `{"members":["uuid-1","uuid-2"]}`, Metafile{Members: []string{"uuid-1", "uuid-2"}, MembersSet: true}},
		{"empty members list is set", `{"members":[]}`, Metafile{Members: []string{}, MembersSet: true}},
		{"placeholders", `{"name":"{{.Name}} ({{.Date}})","properties":{"file":"{{ .File }}"}}`,
			Metafile{Name: ptr("{{.Name}} ({{.Date}})"), Properties: map[string]*string{"file": ptr("{{ .File }}")}}},
		{"escapes", `{"name":"a\u00e9\"b\\c\n"}`, Metafile{Name: ptr("aé\"b\\c\n")}},
		{"byte order mark", "\xef\xbb\xbf{\"name\":\"n\"}", Metafile{Name: ptr("n")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseMetafile("x.meta", []byte(c.in))
			require.NoError(t, err)
			m.Source, m.Warnings = "", nil
			assert.Equal(t, &c.want, m)
		})
	}
}

func TestParseMetafileWarnings(t *testing.T) {
	m, err := ParseMetafile("a.meta", []byte("{\n  \"name\": \"n\",\n  \"colour\": \"blue\",\n  \"store\": \"pithos\"\n}"))
	require.NoError(t, err)
	assert.Equal(t, []Warning{
		{File: "a.meta", Line: 3, Column: 3, Field: "colour", Msg: "unknown field ignored (known: name, disk-format, container-format, is-public, properties, members)"},
		{File: "a.meta", Line: 4, Column: 3, Field: "store", Msg: "ignored: set by the server, not by a metafile"},
	}, m.Warnings)

	for _, in := range []string{"", "  \n\t"} {
		m, err = ParseMetafile("e.meta", []byte(in))
		require.NoError(t, err)
		assert.Equal(t, &Metafile{Source: "e.meta", Warnings: []Warning{{File: "e.meta", Msg: "empty file, read as {}"}}}, m)
	}
}

func TestParseMetafileErrors(t *testing.T) {
	cases := []struct {
		name, in string
		want     string
		line     int
		col      int
		field    string
	}{
		{"missing colon", "{\n  \"name\": \"x\",\n  \"disk-format\" \"diskdump\"\n}",
			`images/a.diskdump.meta:3:17: invalid JSON: invalid character '"' after object key`, 3, 17, ""},
		{"trailing comma", "{\n  \"name\": \"x\",\n}",
			`images/a.diskdump.meta:3:1: invalid JSON: invalid character '}' looking for beginning of object key string`, 3, 1, ""},
		{"truncated", "{\n  \"name\": \"x\"",
			`images/a.diskdump.meta:2:14: invalid JSON: unexpected end of JSON input`, 2, 14, ""},
		{"garbage after the object", "{}\nx",
			`images/a.diskdump.meta:2:1: invalid JSON: invalid character 'x' after top-level value`, 2, 1, ""},
		{"column counts characters", "{\"name\": \"αβγ\" x}",
			`images/a.diskdump.meta:1:16: invalid JSON: invalid character 'x' after object key:value pair`, 1, 16, ""},
		{"not UTF-8", "{\n  \"name\": \"caf\xe9\"\n}",
			`images/a.diskdump.meta:2:15: not valid UTF-8 (byte 0xe9); save the file as UTF-8`, 2, 15, ""},
		{"an array", "[1]",
			`images/a.diskdump.meta:1:1: a metafile must be a JSON object ({...}), not an array`, 1, 1, ""},
		{"a string", "  \"x\"",
			`images/a.diskdump.meta:1:3: a metafile must be a JSON object ({...}), not a string`, 1, 3, ""},
		{"properties not an object", "{\n  \"properties\": [\"a\"]\n}",
			`images/a.diskdump.meta:2:17: field "properties": must be an object of property names to values, not an array`, 2, 17, "properties"},
		{"property value an object", "{\"properties\": {\"a\": {\"b\": 1}}}",
			`images/a.diskdump.meta:1:22: field "properties.a": must be a string, number or boolean, not an object`, 1, 22, "properties.a"},
		{"property key collision", "{\"properties\": {\n  \"OS-Type\": \"a\",\n  \"os_type\": \"b\"}}",
			`images/a.diskdump.meta:3:3: field "properties.os_type": same property as "OS-Type" (Plankton compares names lowercased, punctuation as '_': both are "os_type"); keep one`, 3, 3, "properties.os_type"},
		{"field given twice", "{\n  \"disk-format\": \"diskdump\",\n  \"disk_format\": \"extdump\"\n}",
			`images/a.diskdump.meta:3:3: field "disk_format": given twice (also as "disk-format" on line 2); keep one`, 3, 3, "disk_format"},
		{"is-public not a boolean", "{\"is-public\": \"yes\"}",
			`images/a.diskdump.meta:1:15: field "is-public": must be true or false, not "yes"`, 1, 15, "is-public"},
		{"is-public a number", "{\"is-public\": 1}",
			`images/a.diskdump.meta:1:15: field "is-public": must be true or false, not a number`, 1, 15, "is-public"},
		{"name a boolean", "{\"name\": true}",
			`images/a.diskdump.meta:1:10: field "name": must be a string, not a boolean`, 1, 10, "name"},
		{"disk format a list", "{\"disk-format\": [\"diskdump\"]}",
			`images/a.diskdump.meta:1:17: field "disk-format": must be a string, not an array`, 1, 17, "disk-format"},
		{"members not a list", "{\"members\": \"uuid-1,uuid-2\"}",
			`images/a.diskdump.meta:1:13: field "members": must be a list of user uuids, not a string`, 1, 13, "members"},
		{"member not a string", "{\"members\": [\"uuid-1\", 7]}",
			`images/a.diskdump.meta:1:24: field "members[1]": must be a user uuid string, not a number`, 1, 24, "members[1]"},
		{"unknown placeholder in name", "{\n  \"name\": \"{{.Foo}}\"\n}",
			`images/a.diskdump.meta:2:11: field "name": unknown placeholder {{.Foo}}; known: .Name .File .RelPath .Dir .Date`, 2, 11, "name"},
		{"template action in a property", "{\"properties\": {\"x\": \"{{range .Name}}y{{end}}\"}}",
			`images/a.diskdump.meta:1:22: field "properties.x": unsupported template action {{range .Name}}: only the placeholders .Name .File .RelPath .Dir .Date are allowed (write {{"{{"}} for a literal "{{")`, 1, 22, "properties.x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseMetafile("images/a.diskdump.meta", []byte(c.in))
			require.Error(t, err)
			assert.Nil(t, m)
			assert.Equal(t, c.want, err.Error())
			var me *MetafileError
			require.True(t, errors.As(err, &me), "typed error")
			assert.Equal(t, "images/a.diskdump.meta", me.File)
			assert.Equal(t, c.line, me.Line)
			assert.Equal(t, c.col, me.Column)
			assert.Equal(t, c.field, me.Field)
		})
	}
}

func TestParseMetafileCauses(t *testing.T) {
	_, err := ParseMetafile("a.meta", []byte("{"))
	var me *MetafileError
	require.ErrorAs(t, err, &me)
	require.Error(t, me.Err, "the JSON error is kept")
	assert.Contains(t, errors.Unwrap(err).Error(), "unexpected end of JSON input")

	_, err = ParseMetafile("a.meta", []byte(`{"name":"{{.Nope}}"}`))
	var pe *PlaceholderError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "{{.Nope}}", pe.Action)
}

func TestParseMetafileTooLarge(t *testing.T) {
	data := []byte(`{"name":"` + strings.Repeat("a", MaxMetafileSize) + `"}`)
	_, err := ParseMetafile("big.meta", data)
	require.Error(t, err)
	assert.Equal(t, "big.meta: file is 1048587 bytes, more than the 1048576 a metafile may have", err.Error())
}

func TestMetafileFromMapYAML(t *testing.T) {
	const cfg = `
defaults:
  name: "{{.Name}}"
  disk-format: diskdump
  is_public: true
  members: [uuid-1, uuid-2]
  properties:
    OSFAMILY: linux
    version: 22.04
    build: 7
    released: 2024-01-02
    ssh: yes
    gone: null
`
	var doc struct {
		Defaults map[string]any `yaml:"defaults"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(cfg), &doc))
	m, err := MetafileFromMap("config watch[0].defaults", doc.Defaults)
	require.NoError(t, err)
	assert.Equal(t, &Metafile{
		Source:     "config watch[0].defaults",
		Name:       ptr("{{.Name}}"),
		DiskFormat: ptr("diskdump"),
		IsPublic:   ptr(true),
		Members:    []string{"uuid-1", "uuid-2"},
		MembersSet: true,
		Properties: map[string]*string{
			"osfamily": ptr("linux"), "version": ptr("22.04"), "build": ptr("7"),
			"released": ptr("2024-01-02"), "ssh": ptr("yes"), "gone": nil,
		},
	}, m)
}

func TestMetafileFromMapValues(t *testing.T) {
	m, err := MetafileFromMap("defaults", map[string]any{
		"properties": map[any]any{"A": int64(1), "B": uint64(2), "C": 1.5, "D": false,
			"E": time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		"members": []string{"u"},
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]*string{"a": ptr("1"), "b": ptr("2"), "c": ptr("1.5"), "d": ptr("false"),
		"e": ptr("2024-01-02T03:04:05Z")}, m.Properties)
	assert.Equal(t, []string{"u"}, m.Members)

	m, err = MetafileFromMap("defaults", nil)
	require.NoError(t, err)
	assert.Equal(t, &Metafile{Source: "defaults"}, m)
}

func TestMetafileFromMapErrors(t *testing.T) {
	cases := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"properties a list", map[string]any{"properties": []any{"a"}},
			`config watch[0].defaults: field "properties": must be an object of property names to values, not an array`},
		{"property a map", map[string]any{"properties": map[string]any{"a": map[string]any{}}},
			`config watch[0].defaults: field "properties.a": must be a string, number or boolean, not an object`},
		{"is_public a word", map[string]any{"is_public": "maybe"},
			`config watch[0].defaults: field "is_public": must be true or false, not "maybe"`},
		{"bad placeholder", map[string]any{"name": "{{.name}}"},
			`config watch[0].defaults: field "name": unknown placeholder {{.name}}; known: .Name .File .RelPath .Dir .Date`},
		{"field twice", map[string]any{"disk-format": "diskdump", "disk_format": "extdump"},
			`config watch[0].defaults: field "disk_format": given twice (also as "disk-format"); keep one`},
		{"unsupported type", map[string]any{"name": struct{}{}},
			`config watch[0].defaults: unsupported value {} of type struct {}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := MetafileFromMap("config watch[0].defaults", c.in)
			require.Error(t, err)
			assert.Equal(t, c.want, err.Error())
			var me *MetafileError
			require.ErrorAs(t, err, &me)
			assert.Zero(t, me.Line)
		})
	}
}

func TestLineCol(t *testing.T) {
	data := []byte("ab\nγδe\n\nx")
	for _, c := range []struct{ off, line, col int }{
		{0, 1, 1}, {2, 1, 3}, {3, 2, 1}, {5, 2, 2}, {7, 2, 3}, {8, 2, 4}, {9, 3, 1}, {10, 4, 1}, {11, 4, 2}, {99, 4, 2}, {-1, 1, 1},
	} {
		l, col := lineCol(data, c.off)
		assert.Equal(t, [2]int{c.line, c.col}, [2]int{l, col}, "offset %d", c.off)
	}
}

// FuzzParseMetafile: no input panics; a rejected input gets a typed error
// with a position inside the file; an accepted one, resolved, rendered and
// parsed again, gives the same metadata (members excepted: a rendered .meta
// is the registered image, and members are not part of it).
func FuzzParseMetafile(f *testing.F) {
	for _, s := range []string{
		kamakiMeta,
		`{}`, ``, `[]`, `null`, `{"name":"{{.Name}}"}`, `{"name":"{{.Foo}}"}`,
		`{"disk-format":"extdump","is-public":"True","properties":{"OS-Type":"linux","n":1.50,"b":true,"x":null,"e":""}}`,
		`{"members":["u1","u1",""],"properties":{"a":{"b":1}}}`,
		`{"properties":{"OS-Type":"a","os_type":"b"}}`,
		"{\"name\":\"caf\xe9\"}", "\xef\xbb\xbf{}", `{"name":"{{\"{{\"}}"}`, `{"name":1e999}`,
		`{"name":"a","name":"b"}`, `{"properties":{"k":"\u0000"}}`, `{"is-public":"maybe"}`,
	} {
		f.Add([]byte(s))
	}
	in := ResolveInput{RelPath: "dir/img.diskdump", Date: testDate}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetafile("f.meta", data)
		if err != nil {
			var me *MetafileError
			if !errors.As(err, &me) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if me.Line < 0 || me.Column < 0 || me.Line > 1+strings.Count(string(data), "\n") {
				t.Fatalf("position %d:%d outside the input: %v", me.Line, me.Column, err)
			}
			return
		}
		in.PerImage = m
		r, err := Resolve(in)
		if err != nil {
			t.Fatalf("parsed but does not resolve: %v", err)
		}
		img := &Image{ID: "id", Owner: "o", Name: r.Metadata.Name, DiskFormat: r.Metadata.DiskFormat,
			ContainerFormat: r.Metadata.ContainerFormat, IsPublic: r.Metadata.IsPublic, Properties: r.Metadata.Properties}
		out, err := RenderMetafile(img, "someone")
		if err != nil {
			t.Fatalf("cannot render %+v: %v", img, err)
		}
		m2, err := ParseMetafile("rendered.meta", out)
		if err != nil {
			t.Fatalf("rendered metafile does not parse: %v\n%s", err, out)
		}
		in.PerImage = m2
		r2, err := Resolve(in)
		if err != nil {
			t.Fatalf("rendered metafile does not resolve: %v\n%s", err, out)
		}
		want := r.Metadata
		want.Members = nil
		if !want.Equal(r2.Metadata) || r2.Metadata.Members != nil {
			t.Fatalf("round trip changed the metadata:\n%+v\n%+v\n%s", want, r2.Metadata, out)
		}
		if !Diff(r.Metadata, img).Empty() {
			t.Fatalf("diff with itself: %v", Diff(r.Metadata, img).Strings())
		}
	})
}
