package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testDate = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// mf parses a metafile for a test, failing it on error.
func mf(t *testing.T, source, data string) *Metafile {
	t.Helper()
	m, err := ParseMetafile(source, []byte(data))
	require.NoError(t, err)
	return m
}

func TestResolveBuiltinDefaults(t *testing.T) {
	r, err := Resolve(ResolveInput{RelPath: "linux/debian 12.diskdump", Date: testDate})
	require.NoError(t, err)
	assert.Equal(t, Metadata{
		Name: "linux/debian 12.diskdump", DiskFormat: "diskdump", ContainerFormat: "bare",
		Properties: map[string]string{},
	}, r.Metadata)
	assert.Equal(t, map[string]string{
		"name": BuiltinSource, "disk-format": BuiltinSource, "container-format": BuiltinSource, "is-public": BuiltinSource,
	}, r.Provenance)
	assert.Empty(t, r.Removed)
	assert.Empty(t, r.Warnings)
	require.NoError(t, r.Validate())
}

// TestResolvePrecedence checks each level against the one below it, field by
// field: built-in < config defaults < templates root→leaf < per-image.
func TestResolvePrecedence(t *testing.T) {
	const rel = "a/b/img.diskdump"
	cases := []struct {
		name      string
		defaults  string // JSON, "" for none
		templates []string
		perImage  string
		want      Metadata
		prov      map[string]string // only the keys listed are checked
	}{
		{
			name:     "config defaults override built-ins",
			defaults: `{"name":"cfg","disk-format":"extdump","container-format":"ovf","is-public":true,"members":["u1"],"properties":{"OSFAMILY":"linux"}}`,
			want: Metadata{Name: "cfg", DiskFormat: "extdump", ContainerFormat: "ovf", IsPublic: true, Members: []string{"u1"},
				Properties: map[string]string{"osfamily": "linux"}},
			prov: map[string]string{"name": "defaults", "disk-format": "defaults", "container-format": "defaults",
				"is-public": "defaults", "members": "defaults", "properties.osfamily": "defaults"},
		},
		{
			name:      "root template overrides config defaults",
			defaults:  `{"name":"cfg","disk-format":"extdump","is-public":true,"properties":{"os":"cfg","keep":"cfg"}}`,
			templates: []string{`{"name":"root","disk-format":"ntfsdump","is-public":false,"properties":{"os":"root"}}`},
			want: Metadata{Name: "root", DiskFormat: "ntfsdump", ContainerFormat: "bare", IsPublic: false,
				Properties: map[string]string{"os": "root", "keep": "cfg"}},
			prov: map[string]string{"name": "t0", "disk-format": "t0", "container-format": BuiltinSource,
				"is-public": "t0", "properties.os": "t0", "properties.keep": "defaults"},
		},
		{
			name:     "deeper template wins",
			defaults: `{"properties":{"level":"cfg"}}`,
			templates: []string{
				`{"name":"root","container-format":"aki","properties":{"level":"root","root":"1"}}`,
				`{"name":"a","properties":{"level":"a","a":"1"}}`,
				`{"properties":{"level":"a/b"}}`,
			},
			want: Metadata{Name: "a", DiskFormat: "diskdump", ContainerFormat: "aki",
				Properties: map[string]string{"level": "a/b", "root": "1", "a": "1"}},
			prov: map[string]string{"name": "t1", "container-format": "t0", "properties.level": "t2",
				"properties.root": "t0", "properties.a": "t1"},
		},
		{
			name:      "per-image metafile wins over everything",
			defaults:  `{"name":"cfg","is-public":true,"properties":{"p":"cfg"}}`,
			templates: []string{`{"name":"root","properties":{"p":"root"}}`, `{"name":"a","properties":{"p":"a"}}`},
			perImage:  `{"name":"mine","is-public":false,"properties":{"p":"mine"}}`,
			want: Metadata{Name: "mine", DiskFormat: "diskdump", ContainerFormat: "bare",
				Properties: map[string]string{"p": "mine"}},
			prov: map[string]string{"name": "img", "is-public": "img", "properties.p": "img"},
		},
		{
			name:      "unset fields inherit; set-to-false does not",
			defaults:  `{"is-public":true}`,
			templates: []string{`{"is-public":null}`, `{}`},
			perImage:  `{"is-public":"False"}`,
			want:      Metadata{Name: rel, DiskFormat: "diskdump", ContainerFormat: "bare", Properties: map[string]string{}},
			prov:      map[string]string{"is-public": "img", "name": BuiltinSource},
		},
		{
			name:      "property removed by empty string",
			defaults:  `{"properties":{"os":"linux","users":"root"}}`,
			templates: []string{`{"properties":{"users":""}}`},
			want: Metadata{Name: rel, DiskFormat: "diskdump", ContainerFormat: "bare",
				Properties: map[string]string{"os": "linux"}},
			prov: map[string]string{"properties.os": "defaults"},
		},
		{
			name:      "property removed by null",
			templates: []string{`{"properties":{"os":"linux","users":"root"}}`},
			perImage:  `{"properties":{"users":null}}`,
			want: Metadata{Name: rel, DiskFormat: "diskdump", ContainerFormat: "bare",
				Properties: map[string]string{"os": "linux"}},
		},
		{
			name:      "removed property set again higher up",
			templates: []string{`{"properties":{"x":"1"}}`, `{"properties":{"x":null}}`},
			perImage:  `{"properties":{"x":"2"}}`,
			want: Metadata{Name: rel, DiskFormat: "diskdump", ContainerFormat: "bare",
				Properties: map[string]string{"x": "2"}},
			prov: map[string]string{"properties.x": "img"},
		},
		{
			name:      "removing a property nobody set is a no-op",
			templates: []string{`{"properties":{"ghost":null,"blank":""}}`},
			want:      Metadata{Name: rel, DiskFormat: "diskdump", ContainerFormat: "bare", Properties: map[string]string{}},
		},
		{
			name:      "keys compared after normalisation",
			defaults:  `{"properties":{"OS-Type":"cfg","ROOT_PARTITION":"1"}}`,
			templates: []string{`{"properties":{"os_type":"root"}}`, `{"properties":{"Os.Type":"a"}}`},
			perImage:  `{"properties":{"root-partition":null,"OS:TYPE":"mine"}}`,
			want: Metadata{Name: rel, DiskFormat: "diskdump", ContainerFormat: "bare",
				Properties: map[string]string{"os_type": "mine"}},
			prov: map[string]string{"properties.os_type": "img"},
		},
		{
			name:      "members replaced, not merged",
			defaults:  `{"members":["u1","u2"]}`,
			templates: []string{`{"members":["u3"]}`},
			want: Metadata{Name: rel, DiskFormat: "diskdump", ContainerFormat: "bare", Members: []string{"u3"},
				Properties: map[string]string{}},
			prov: map[string]string{"members": "t0"},
		},
		{
			name:      "an empty member list clears inherited members",
			defaults:  `{"members":["u1"]}`,
			templates: []string{`{"members":["u2"]}`},
			perImage:  `{"members":[]}`,
			want: Metadata{Name: rel, DiskFormat: "diskdump", ContainerFormat: "bare", Members: []string{},
				Properties: map[string]string{}},
			prov: map[string]string{"members": "img"},
		},
		{
			name:      "unset members inherit",
			templates: []string{`{"members":["u1"]}`, `{"members":null}`},
			perImage:  `{"name":"x"}`,
			want: Metadata{Name: "x", DiskFormat: "diskdump", ContainerFormat: "bare", Members: []string{"u1"},
				Properties: map[string]string{}},
			prov: map[string]string{"members": "t0"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := ResolveInput{RelPath: rel, Date: testDate}
			if c.defaults != "" {
				in.Defaults = mf(t, "defaults", c.defaults)
			}
			for i, tpl := range c.templates {
				in.Templates = append(in.Templates, mf(t, "t"+string(rune('0'+i)), tpl))
			}
			if c.perImage != "" {
				in.PerImage = mf(t, "img", c.perImage)
			}
			r, err := Resolve(in)
			require.NoError(t, err)
			assert.Equal(t, c.want, r.Metadata)
			for k, v := range c.prov {
				assert.Equal(t, v, r.Provenance[k], "provenance of %s", k)
			}
			// Provenance covers exactly the properties present.
			for k := range r.Metadata.Properties {
				assert.Contains(t, r.Provenance, ProvProperty(k))
			}
		})
	}
}

func TestResolveRemovedAndWarnings(t *testing.T) {
	in := ResolveInput{
		RelPath:   "img.diskdump",
		Defaults:  mf(t, "defaults", `{"properties":{"a":"1","b":"2"}}`),
		Templates: []*Metafile{mf(t, "_template.meta", "{\n\"id\":\"x\",\n\"properties\":{\"a\":null}}")},
		PerImage:  mf(t, "img.diskdump.meta", `{"members":["u1","u2","u1"],"properties":{"b":"","c":null}}`),
	}
	r, err := Resolve(in)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "_template.meta", "b": "img.diskdump.meta"}, r.Removed)
	assert.Empty(t, r.Metadata.Properties)
	assert.NotContains(t, r.Provenance, "properties.a")
	assert.Equal(t, []string{"u1", "u2"}, r.Metadata.Members, "duplicates dropped, order kept")
	assert.Equal(t, []Warning{
		{File: "_template.meta", Line: 2, Column: 1, Field: "id", Msg: "ignored: set by the server, not by a metafile"},
		{File: "img.diskdump.meta", Field: "members", Msg: `member "u1" listed twice; once is enough`},
	}, r.Warnings)
}

func TestResolvePlaceholders(t *testing.T) {
	const tpl = `{"name":"{{.Name}} {{.Date}}","properties":{"file":"{{.File}}","path":"{{.RelPath}}","dir":"[{{.Dir}}]","lit":"{{\"{{\"}}x}}"}}`
	cases := []struct {
		name  string
		rel   string
		level string // where the template sits
		want  Metadata
	}{
		{"in config defaults", "linux/deb.diskdump", "defaults", Metadata{Name: "deb 2024-05-06",
			Properties: map[string]string{"file": "deb.diskdump", "path": "linux/deb.diskdump", "dir": "[linux]", "lit": "{{x}}"}}},
		{"in a template", "linux/deb.diskdump", "template", Metadata{Name: "deb 2024-05-06",
			Properties: map[string]string{"file": "deb.diskdump", "path": "linux/deb.diskdump", "dir": "[linux]", "lit": "{{x}}"}}},
		{"in the per-image metafile, at the root", "win.diskdump", "image", Metadata{Name: "win 2024-05-06",
			Properties: map[string]string{"file": "win.diskdump", "path": "win.diskdump", "dir": "[]", "lit": "{{x}}"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := mf(t, c.level, tpl)
			in := ResolveInput{RelPath: c.rel, Date: testDate}
			switch c.level {
			case "defaults":
				in.Defaults = m
			case "template":
				in.Templates = []*Metafile{m}
			default:
				in.PerImage = m
			}
			r, err := Resolve(in)
			require.NoError(t, err)
			c.want.DiskFormat, c.want.ContainerFormat = "diskdump", "bare"
			assert.Equal(t, c.want, r.Metadata)
		})
	}

	// One template, two images: each gets its own values.
	shared := mf(t, "_template.meta", `{"name":"{{.Dir}}: {{.Name}}"}`)
	for rel, want := range map[string]string{"a/x.diskdump": "a: x", "b/c/y.diskdump": "b/c: y"} {
		r, err := Resolve(ResolveInput{RelPath: rel, Templates: []*Metafile{shared}})
		require.NoError(t, err)
		assert.Equal(t, want, r.Metadata.Name)
	}
}

func TestResolvePlaceholderExpandingToEmpty(t *testing.T) {
	r, err := Resolve(ResolveInput{
		RelPath:   "top.diskdump",
		Templates: []*Metafile{mf(t, "root", `{"properties":{"dir":"root"}}`), mf(t, "t", `{"properties":{"dir":"{{.Dir}}"}}`)},
	})
	require.NoError(t, err)
	assert.Empty(t, r.Metadata.Properties, "an empty expansion removes the property")
	assert.Equal(t, map[string]string{"dir": "t"}, r.Removed)
	require.Len(t, r.Warnings, 1)
	assert.Equal(t, `t: field "properties.dir": "{{.Dir}}" expands to "" for this image; Plankton cannot store an empty value, so the property is removed`, r.Warnings[0].String())
}

func TestResolveBadPlaceholderFromCode(t *testing.T) {
	// ParseMetafile rejects these; a Metafile built in code reaches Resolve.
	_, err := Resolve(ResolveInput{RelPath: "x.diskdump", PerImage: &Metafile{Source: "code", Name: ptr("{{.Bad}}")}})
	assert.EqualError(t, err, `code: field "name": unknown placeholder {{.Bad}}; known: .Name .File .RelPath .Dir .Date`)
	var me *MetafileError
	require.ErrorAs(t, err, &me)

	_, err = Resolve(ResolveInput{RelPath: "x.diskdump", Templates: []*Metafile{{Source: "code", Properties: map[string]*string{"k": ptr("{{if}}")}}}})
	require.ErrorAs(t, err, &me)
	assert.Equal(t, "properties.k", me.Field)

	// Keys not normalised by a caller are normalised here.
	r, err := Resolve(ResolveInput{RelPath: "x.diskdump", PerImage: &Metafile{Source: "code", Properties: map[string]*string{"OS-Type": ptr("l")}}})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"os_type": "l"}, r.Metadata.Properties)
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(name), 0o755))
	require.NoError(t, os.WriteFile(name, []byte(data), 0o644))
}

func TestLoadChain(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "_template.meta"), `{"properties":{"level":"root"}}`)
	// no a/_template.meta
	writeFile(t, filepath.Join(root, "a", "b", "_template.meta"), `{"properties":{"level":"a/b"}}`)
	writeFile(t, filepath.Join(root, "a", "b", "img.diskdump.meta"), `{"name":"mine"}`)
	writeFile(t, filepath.Join(root, "a", "b", "other.diskdump.meta"), `{"name":"other"}`)
	writeFile(t, filepath.Join(root, "c", "_template.meta"), `{"name":"not on the path"}`)

	tpls, img, err := LoadChain(root, "a/b/img.diskdump")
	require.NoError(t, err)
	require.Len(t, tpls, 2)
	assert.Equal(t, filepath.Join(root, "_template.meta"), tpls[0].Source)
	assert.Equal(t, filepath.Join(root, "a", "b", "_template.meta"), tpls[1].Source)
	require.NotNil(t, img)
	assert.Equal(t, filepath.Join(root, "a", "b", "img.diskdump.meta"), img.Source)

	r, err := Resolve(ResolveInput{RelPath: "a/b/img.diskdump", Templates: tpls, PerImage: img})
	require.NoError(t, err)
	assert.Equal(t, "mine", r.Metadata.Name)
	assert.Equal(t, map[string]string{"level": "a/b"}, r.Metadata.Properties)

	// An image at the root with no metafile of its own.
	tpls, img, err = LoadChain(root, "top.diskdump")
	require.NoError(t, err)
	require.Len(t, tpls, 1)
	assert.Nil(t, img)

	// Nothing at all.
	tpls, img, err = LoadChain(t.TempDir(), "x/y.diskdump")
	require.NoError(t, err)
	assert.Empty(t, tpls)
	assert.Nil(t, img)
}

func TestLoadChainErrors(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a", "_template.meta"), "{\n  \"name\": 3,\n  \"properties\": 1\n}")
	_, _, err := LoadChain(root, "a/x.diskdump")
	want := filepath.Join(root, "a", "_template.meta") + `:3:17: field "properties": must be an object of property names to values, not a number`
	assert.EqualError(t, err, want)

	// A directory where a metafile should be.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "b", "x.diskdump.meta"), 0o755))
	_, _, err = LoadChain(root, "b/x.diskdump")
	var me *MetafileError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, filepath.Join(root, "b", "x.diskdump.meta"), me.File)
	assert.Contains(t, err.Error(), "cannot read: read: is a directory")

	// Too large: refused from its size, not read at all.
	big := make([]byte, MaxMetafileSize+10)
	for i := range big {
		big[i] = ' '
	}
	writeFile(t, filepath.Join(root, "c", "x.diskdump.meta"), string(big))
	_, _, err = LoadChain(root, "c/x.diskdump")
	assert.EqualError(t, err, filepath.Join(root, "c", "x.diskdump.meta")+": file is 1048586 bytes, more than the 1048576 a metafile may have; it was not read")
	var shared *os.File // shares the open file's offset, which reading would move
	_, _, err = LoadChainWith(root, "c/x.diskdump", func(rel string) (*os.File, error) {
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(rel)))
		if err == nil && rel == "c/x.diskdump.meta" {
			fd, derr := syscall.Dup(int(f.Fd()))
			require.NoError(t, derr)
			shared = os.NewFile(uintptr(fd), "dup")
		}
		return f, err
	})
	require.Error(t, err)
	require.NotNil(t, shared)
	off, err := shared.Seek(0, io.SeekCurrent)
	require.NoError(t, err)
	assert.Zero(t, off, "the oversized metafile was not read")
	shared.Close()

	// Too deep: a template chain longer than MaxChainDepth is refused.
	deep := strings.Repeat("d/", MaxChainDepth) + "x.diskdump"
	_, _, err = LoadChain(root, deep)
	require.ErrorAs(t, err, &me)
	assert.Contains(t, err.Error(), "templates are read from at most 31 levels")
	_, _, err = LoadChain(root, strings.Repeat("d/", MaxChainDepth-1)+"x.diskdump")
	assert.NoError(t, err, "as deep as allowed")

	if os.Geteuid() != 0 { // root reads anything
		p := filepath.Join(root, "d", "x.diskdump.meta")
		writeFile(t, p, "{}")
		require.NoError(t, os.Chmod(p, 0))
		_, _, err = LoadChain(root, "d/x.diskdump")
		require.ErrorAs(t, err, &me)
		assert.True(t, errors.Is(err, fs.ErrPermission))
		assert.EqualError(t, err, p+": cannot read: open: permission denied")
	}

	for _, rel := range []string{"", "/abs.diskdump", "../x.diskdump", "a/../x.diskdump", "a//x.diskdump", ".", "a/"} {
		_, _, err = LoadChain(root, rel)
		assert.Error(t, err, rel)
	}
}

func TestAffectedBy(t *testing.T) {
	cases := []struct {
		in           string
		prefix, item string
		ok           bool
	}{
		{"_template.meta", "", "", true},
		{"a/_template.meta", "a/", "", true},
		{"a/b/_template.meta", "a/b/", "", true},
		{"x.diskdump.meta", "", "x.diskdump", true},
		{"a/b/my img.diskdump.meta", "", "a/b/my img.diskdump", true},
		{"a/x.diskdump", "", "", false},
		{"a/.meta", "", "", false},
		{"a/_template.meta.bak", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		prefix, item, ok := AffectedBy(c.in)
		assert.Equal(t, []any{c.prefix, c.item, c.ok}, []any{prefix, item, ok}, c.in)
	}
}

// TestResolveDetectedLayer: what was detected in the disk image sits just
// above the built-in defaults: config defaults, templates and the metafile
// all override it, property by property, and can remove it.
func TestResolveDetectedLayer(t *testing.T) {
	detected := []DetectedProperty{
		{"OSFAMILY", "linux", "partition 1 ext4: a Linux root"},
		{"ROOT_PARTITION", "1", "partition 1 ext4: the Linux root filesystem"},
		{"PARTITION_TABLE", "msdos", "the MBR partition table"},
		{"OS", "debian", "partition 1 ext4 /etc/os-release (ID)"},
		{"DESCRIPTION", "Debian GNU/Linux 12 {{.Name}}", "partition 1 ext4 /etc/os-release (PRETTY_NAME)"},
		{"KERNEL", "6.1.0-18-amd64", "partition 1 ext4 /boot/vmlinuz-6.1.0-18-amd64"},
		{"USERS", "root alice bob", "partition 1 ext4 /etc/passwd"},
	}
	defaults, err := MetafileFromMap("defaults", map[string]any{"properties": map[string]any{"OSFAMILY": "windows", "SORTORDER": "1"}})
	require.NoError(t, err)
	r, err := Resolve(ResolveInput{
		RelPath: "img.diskdump", Date: testDate, Detected: detected, Defaults: defaults,
		Templates: []*Metafile{mf(t, "t0", `{"properties":{"os":"ubuntu"}}`)},
		PerImage:  mf(t, "img.diskdump.meta", `{"properties":{"DESCRIPTION":"My image","users":null}}`),
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"osfamily": "windows", "root_partition": "1", "partition_table": "msdos", "os": "ubuntu",
		"description": "My image", "kernel": "6.1.0-18-amd64", "sortorder": "1",
	}, r.Metadata.Properties)
	assert.Equal(t, "defaults", r.Provenance["properties.osfamily"])
	assert.Equal(t, "t0", r.Provenance["properties.os"])
	assert.Equal(t, "img.diskdump.meta", r.Provenance["properties.description"])
	assert.Equal(t, "detected from partition 1 ext4: the Linux root filesystem", r.Provenance["properties.root_partition"])
	assert.Equal(t, "detected from partition 1 ext4 /boot/vmlinuz-6.1.0-18-amd64", r.Provenance["properties.kernel"])
	assert.Equal(t, map[string]string{"users": "img.diskdump.meta"}, r.Removed, "a metafile removes a detected value with null")
	assert.True(t, r.IsDetected("kernel"))
	assert.False(t, r.IsDetected("osfamily"))
	require.NoError(t, r.Validate())

	t.Run("detected values are data, not templates", func(t *testing.T) {
		r, err := Resolve(ResolveInput{RelPath: "img.diskdump", Date: testDate, Detected: detected})
		require.NoError(t, err)
		assert.Equal(t, "Debian GNU/Linux 12 {{.Name}}", r.Metadata.Properties["description"])
		assert.Equal(t, "detected from partition 1 ext4 /etc/os-release (PRETTY_NAME)", r.Provenance["properties.description"])
		assert.Len(t, r.Metadata.Properties, 7)
		assert.Empty(t, r.Warnings)
	})

	t.Run("detection never pushes an image over Plankton's property limit", func(t *testing.T) {
		props := map[string]any{"os": "from-template"}
		for i := 0; i < MaxImageProperties-4; i++ {
			props[fmt.Sprintf("p%02d", i)] = "v"
		}
		tmpl, err := MetafileFromMap("t0", map[string]any{"properties": props})
		require.NoError(t, err)
		r, err := Resolve(ResolveInput{RelPath: "img.diskdump", Date: testDate, Detected: detected, Templates: []*Metafile{tmpl}})
		require.NoError(t, err)
		assert.Len(t, r.Metadata.Properties, MaxImageProperties)
		for _, k := range []string{"osfamily", "root_partition", "partition_table"} {
			assert.True(t, r.IsDetected(k), k)
		}
		assert.Equal(t, "from-template", r.Metadata.Properties["os"], "an overridden value stays")
		for _, k := range []string{"description", "kernel", "users"} {
			assert.NotContains(t, r.Metadata.Properties, k)
			assert.NotContains(t, r.Provenance, "properties."+k)
		}
		require.Len(t, r.Warnings, 1)
		assert.Contains(t, r.Warnings[0].String(), "DESCRIPTION, KERNEL, USERS detected but left out")
		require.NoError(t, r.Validate())
	})
}
