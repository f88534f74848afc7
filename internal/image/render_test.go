package image

import (
	"encoding/json"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func kamakiImage() *Image {
	return &Image{
		ID: "img-1", Name: "My Img", DiskFormat: "diskdump", ContainerFormat: "bare", Status: "AVAILABLE",
		Owner: "uuid-1", Checksum: "abc", Location: "pithos://uuid-1/images/up/local.img", Size: 50,
		CreatedAt: "2015-01-01 00:00:00", UpdatedAt: "2015-01-01 00:00:00",
		Properties: map[string]string{"osfamily": "linux", "root_partition": "1"},
	}
}

func TestRenderMetafileGolden(t *testing.T) {
	out, err := RenderMetafile(kamakiImage(), "user@example.org")
	require.NoError(t, err)
	assert.Equal(t, `{
  "name": "My Img",
  "disk-format": "diskdump",
  "container-format": "bare",
  "is-public": "False",
  "properties": {
    "osfamily": "linux",
    "root_partition": "1"
  },
  "id": "img-1",
  "owner": "uuid-1 (user@example.org)",
  "location": "pithos://uuid-1/images/up/local.img",
  "checksum": "abc",
  "size": "50",
  "status": "AVAILABLE",
  "is-snapshot": "False",
  "description": "",
  "created-at": "2015-01-01 00:00:00",
  "updated-at": "2015-01-01 00:00:00",
  "deleted-at": ""
}
`, string(out))

	// Same keys as kamaki's own .meta, every value a string but properties.
	var got, kamaki map[string]any
	require.NoError(t, json.Unmarshal(out, &got))
	require.NoError(t, json.Unmarshal([]byte(kamakiMeta), &kamaki))
	assert.Equal(t, keysOf(kamaki), keysOf(got))
	for k, v := range got {
		if k != "properties" {
			assert.IsType(t, "", v, k)
		}
	}
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestRenderMetafileValues(t *testing.T) {
	img := &Image{ID: "i", Owner: "uuid-2", IsPublic: true, IsSnapshot: true, Size: 1 << 40,
		Name:       `a "quoted" <b> & ünï`,
		Properties: map[string]string{"OS-Type": "linux", "ROOT": "{{.Name}}"}}
	out, err := RenderMetafile(img, "")
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got))
	assert.Equal(t, `a "quoted" <b> & ünï`, got["name"])
	assert.Contains(t, string(out), `"name": "a \"quoted\" <b> & ünï"`, "no HTML escaping, UTF-8 kept")
	assert.Equal(t, "uuid-2", got["owner"], "no name known: the uuid alone")
	assert.Equal(t, "True", got["is-public"])
	assert.Equal(t, "True", got["is-snapshot"])
	assert.Equal(t, "1099511627776", got["size"])
	assert.Equal(t, map[string]any{"os_type": "linux", "root": `{{"{{"}}.Name}}`}, got["properties"], "keys normalised, {{ escaped")

	out, err = RenderMetafile(&Image{ID: "e"}, "name")
	require.NoError(t, err)
	assert.Contains(t, string(out), `"properties": {},`)
	assert.Contains(t, string(out), `"owner": "",`, "no owner uuid: no name either")
}

func TestRenderMetafileErrors(t *testing.T) {
	_, err := RenderMetafile(nil, "")
	assert.EqualError(t, err, "render metafile: no image")

	_, err = RenderMetafile(&Image{ID: "i", Name: "caf\xe9"}, "")
	assert.EqualError(t, err, `render metafile of image i: "caf\xe9" is not valid UTF-8`)

	_, err = RenderMetafile(&Image{ID: "i", Properties: map[string]string{"OS-Type": "a", "os_type": "b"}}, "")
	assert.EqualError(t, err, `render metafile of image i: two properties are both "os_type" after normalisation`)
}

func TestRenderParseRoundTrip(t *testing.T) {
	imgs := []*Image{
		kamakiImage(),
		{ID: "2", Name: "{{.Name}} literally", DiskFormat: "ntfsdump", ContainerFormat: "ovf", IsPublic: true,
			Owner: "u", Properties: map[string]string{"desc": "Débian 8 ü {{", "x": "}}{{{"}},
		{ID: "3", Name: "", DiskFormat: "", ContainerFormat: ""},
	}
	for _, img := range imgs {
		out, err := RenderMetafile(img, "someone")
		require.NoError(t, err)
		m, err := ParseMetafile("x.meta", out)
		require.NoError(t, err, string(out))
		// The server-set fields are ignored, each with a warning.
		var ignored []string
		for _, w := range m.Warnings {
			assert.Equal(t, "ignored: set by the server, not by a metafile", w.Msg)
			ignored = append(ignored, w.Field)
		}
		assert.Equal(t, []string{"id", "owner", "location", "checksum", "size", "status", "is-snapshot",
			"description", "created-at", "updated-at", "deleted-at"}, ignored)

		r, err := Resolve(ResolveInput{RelPath: "other/name.diskdump", PerImage: m})
		require.NoError(t, err)
		assert.Equal(t, MetadataFromImage(img), r.Metadata)
		assert.True(t, Diff(r.Metadata, img).Empty(), "a rendered image reused as a template matches it")
	}
}

func TestDiff(t *testing.T) {
	reg := &Image{Name: "n", DiskFormat: "diskdump", ContainerFormat: "bare", IsPublic: false,
		Properties: map[string]string{"os": "linux", "old": "x", "same": "s"}}
	cases := []struct {
		name    string
		desired Metadata
		reg     *Image
		want    Changes
		strs    []string
	}{
		{"identical", Metadata{Name: "n", DiskFormat: "diskdump", ContainerFormat: "bare",
			Properties: map[string]string{"os": "linux", "old": "x", "same": "s"}, Members: []string{"ignored"}}, reg, Changes{}, nil},
		{"registered keys normalised", Metadata{Name: "n", DiskFormat: "diskdump", ContainerFormat: "bare",
			Properties: map[string]string{"os_type": "l"}},
			&Image{Name: "n", DiskFormat: "diskdump", ContainerFormat: "bare", Properties: map[string]string{"OS-Type": "l"}},
			Changes{}, nil},
		{"everything differs", Metadata{Name: "m", DiskFormat: "extdump", ContainerFormat: "ovf", IsPublic: true,
			Properties: map[string]string{"os": "windows", "new": "y", "same": "s"}}, reg,
			Changes{
				Name: &StringChange{"n", "m"}, DiskFormat: &StringChange{"diskdump", "extdump"},
				ContainerFormat: &StringChange{"bare", "ovf"}, IsPublic: &BoolChange{false, true},
				Properties: []PropertyChange{{Key: "new", To: "y"}, {Key: "old", From: "x"}, {Key: "os", From: "linux", To: "windows"}},
			},
			[]string{`name: "n" -> "m"`, `disk-format: "diskdump" -> "extdump"`, `container-format: "bare" -> "ovf"`,
				`is-public: false -> true`, `property new: add "y"`, `property old: remove (was "x")`, `property os: "linux" -> "windows"`}},
		{"not registered", Metadata{Name: "n", DiskFormat: "diskdump", ContainerFormat: "bare", Properties: map[string]string{"a": "1"}}, nil,
			Changes{Name: &StringChange{"", "n"}, DiskFormat: &StringChange{"", "diskdump"}, ContainerFormat: &StringChange{"", "bare"},
				Properties: []PropertyChange{{Key: "a", To: "1"}}},
			[]string{`name: "" -> "n"`, `disk-format: "" -> "diskdump"`, `container-format: "" -> "bare"`, `property a: add "1"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Diff(c.desired, c.reg)
			assert.Equal(t, c.want, got)
			assert.Equal(t, c.want.Name == nil && c.want.DiskFormat == nil && c.want.ContainerFormat == nil &&
				c.want.IsPublic == nil && len(c.want.Properties) == 0, got.Empty())
			assert.Equal(t, c.strs, got.Strings())
		})
	}

	ch := Diff(Metadata{Name: "n", DiskFormat: "diskdump", ContainerFormat: "bare",
		Properties: map[string]string{"os": "windows", "new": "y"}}, reg)
	assert.Equal(t, map[string]string{"os": "windows", "new": "y"}, ch.SetProperties())
	assert.Equal(t, []string{"old", "same"}, ch.DeleteProperties())
	assert.Equal(t, map[string]string{}, Changes{}.SetProperties())
	assert.Empty(t, Changes{}.DeleteProperties())
}

func TestDiffMembers(t *testing.T) {
	cases := []struct {
		name                     string
		desired, current         []string
		add, remove, description []string
	}{
		{"same", []string{"a", "b"}, []string{"b", "a"}, nil, nil, []string{}},
		{"both empty", nil, []string{}, nil, nil, []string{}},
		{"add", []string{"a", "b", "c"}, []string{"b"}, []string{"a", "c"}, nil, []string{"member a: add", "member c: add"}},
		{"remove", nil, []string{"x", "y"}, nil, []string{"x", "y"}, []string{"member x: remove", "member y: remove"}},
		{"both", []string{"a", "b"}, []string{"b", "c"}, []string{"a"}, []string{"c"}, []string{"member a: add", "member c: remove"}},
		{"duplicates count once", []string{"a", "a"}, []string{"c", "c"}, []string{"a"}, []string{"c"}, []string{"member a: add", "member c: remove"}},
		{"case matters", []string{"A"}, []string{"a"}, []string{"A"}, []string{"a"}, []string{"member A: add", "member a: remove"}},
	}
	for _, c := range cases {
		add, remove := DiffMembers(c.desired, c.current)
		assert.Equal(t, c.add, add, c.name)
		assert.Equal(t, c.remove, remove, c.name)
		assert.Equal(t, c.description, DescribeMembers(add, remove), c.name)
	}
}

func TestMetadataEqual(t *testing.T) {
	base := Metadata{Name: "n", DiskFormat: "diskdump", ContainerFormat: "bare", IsPublic: true,
		Properties: map[string]string{"a": "1"}, Members: []string{"u1", "u2"}}
	same := base
	same.Members = []string{"u2", "u1"}
	assert.True(t, base.Equal(same), "member order does not matter")
	assert.True(t, Metadata{}.Equal(Metadata{Properties: map[string]string{}, Members: []string{}}), "nil and empty")

	for name, mod := range map[string]func(*Metadata){
		"name":       func(m *Metadata) { m.Name = "x" },
		"disk":       func(m *Metadata) { m.DiskFormat = "extdump" },
		"container":  func(m *Metadata) { m.ContainerFormat = "ovf" },
		"public":     func(m *Metadata) { m.IsPublic = false },
		"prop value": func(m *Metadata) { m.Properties = map[string]string{"a": "2"} },
		"prop key":   func(m *Metadata) { m.Properties = map[string]string{"b": "1"} },
		"prop extra": func(m *Metadata) { m.Properties = map[string]string{"a": "1", "b": "2"} },
		"members":    func(m *Metadata) { m.Members = []string{"u1"} },
	} {
		o := base
		mod(&o)
		assert.False(t, base.Equal(o), name)
		assert.False(t, o.Equal(base), name)
	}
}

func TestMetadataFromImage(t *testing.T) {
	assert.Equal(t, Metadata{Properties: map[string]string{}}, MetadataFromImage(nil))
	assert.Equal(t, Metadata{Name: "n", DiskFormat: "d", ContainerFormat: "c", IsPublic: true,
		Properties: map[string]string{"os_type": "l"}},
		MetadataFromImage(&Image{Name: "n", DiskFormat: "d", ContainerFormat: "c", IsPublic: true, ID: "x",
			Properties: map[string]string{"OS-TYPE": "l"}}))
}
