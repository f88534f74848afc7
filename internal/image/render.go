package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// RenderMetafile writes img in kamaki's .meta format (what `kamaki image
// register` uploads as <object>.meta): a JSON object with dashed keys, every
// value a string ("True"/"False" for booleans, size in decimal), properties
// lowercase with underscores, owner as "<uuid> (<name>)" when ownerName is
// known, indented by 2. Keys come in a fixed order (the user-settable ones
// first) rather than kamaki's dict order, and non-ASCII is written as UTF-8
// rather than \u escapes; both are the same JSON to any reader.
//
// A "{{" in the name or a property value is written as {{"{{"}} so that the
// file, reused as a template, expands back to the registered value.
// ParseMetafile of the result gives back name, formats, is-public and
// properties; the server-set fields are ignored there with warnings.
func RenderMetafile(img *Image, ownerName string) ([]byte, error) {
	if img == nil {
		return nil, fmt.Errorf("render metafile: no image")
	}
	owner := img.Owner
	if ownerName != "" && owner != "" {
		owner += " (" + ownerName + ")"
	}
	props := make(map[string]string, len(img.Properties))
	keys := make([]string, 0, len(img.Properties))
	for k, v := range img.Properties {
		nk := NormalizeKey(k)
		if _, dup := props[nk]; dup {
			return nil, fmt.Errorf("render metafile of image %s: two properties are both %q after normalisation", img.ID, nk)
		}
		props[nk] = v
		keys = append(keys, nk)
	}
	sort.Strings(keys)

	w := &metaWriter{}
	w.buf.WriteString("{\n")
	w.field("name", EscapePlaceholders(img.Name))
	w.field("disk-format", img.DiskFormat)
	w.field("container-format", img.ContainerFormat)
	w.field("is-public", pyBool(img.IsPublic))
	w.sep()
	if len(keys) == 0 {
		w.buf.WriteString(`  "properties": {}`)
	} else {
		w.buf.WriteString("  \"properties\": {\n")
		for i, k := range keys {
			if i > 0 {
				w.buf.WriteString(",\n")
			}
			w.buf.WriteString("    ")
			w.str(k)
			w.buf.WriteString(": ")
			w.str(EscapePlaceholders(props[k]))
		}
		w.buf.WriteString("\n  }")
	}
	w.field("id", img.ID)
	w.field("owner", owner)
	w.field("location", img.Location)
	w.field("checksum", img.Checksum)
	w.field("size", strconv.FormatInt(img.Size, 10))
	w.field("status", img.Status)
	w.field("is-snapshot", pyBool(img.IsSnapshot))
	w.field("description", img.Description)
	w.field("created-at", img.CreatedAt)
	w.field("updated-at", img.UpdatedAt)
	w.field("deleted-at", img.DeletedAt)
	w.buf.WriteString("\n}\n")
	if w.err != nil {
		return nil, fmt.Errorf("render metafile of image %s: %w", img.ID, w.err)
	}
	return w.buf.Bytes(), nil
}

// pyBool is Python's str(bool), which is what Plankton and kamaki show.
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

type metaWriter struct {
	buf    bytes.Buffer
	fields int
	err    error
}

func (w *metaWriter) sep() {
	if w.fields > 0 {
		w.buf.WriteString(",\n")
	}
	w.fields++
}

func (w *metaWriter) field(key, value string) {
	w.sep()
	w.buf.WriteString("  ")
	w.str(key)
	w.buf.WriteString(": ")
	w.str(value)
}

// str writes s as a JSON string. Invalid UTF-8 is an error: encoding/json
// would silently replace it, and the file would not say what is registered.
func (w *metaWriter) str(s string) {
	if !utf8.ValidString(s) {
		if w.err == nil {
			w.err = fmt.Errorf("%q is not valid UTF-8", s)
		}
		return
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		if w.err == nil {
			w.err = err
		}
		return
	}
	w.buf.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

// MetadataFromImage is the user-controlled part of a registered image.
// Members are not part of an Image (they come from another call).
func MetadataFromImage(img *Image) Metadata {
	md := Metadata{Properties: map[string]string{}}
	if img == nil {
		return md
	}
	md.Name, md.DiskFormat, md.ContainerFormat, md.IsPublic = img.Name, img.DiskFormat, img.ContainerFormat, img.IsPublic
	for k, v := range img.Properties {
		md.Properties[NormalizeKey(k)] = v
	}
	return md
}

// Equal reports whether m and o describe the same image: the same fields,
// the same properties (nil and empty maps are equal) and the same members in
// any order.
func (m Metadata) Equal(o Metadata) bool {
	if m.Name != o.Name || m.DiskFormat != o.DiskFormat || m.ContainerFormat != o.ContainerFormat ||
		m.IsPublic != o.IsPublic || len(m.Properties) != len(o.Properties) {
		return false
	}
	for k, v := range m.Properties {
		if ov, ok := o.Properties[k]; !ok || ov != v {
			return false
		}
	}
	add, remove := DiffMembers(m.Members, o.Members)
	return len(add) == 0 && len(remove) == 0
}

// StringChange is a field whose registered value From differs from the
// desired To.
type StringChange struct{ From, To string }

// BoolChange is is-public changing.
type BoolChange struct{ From, To bool }

// PropertyChange is one property to set or delete: From is "" when the
// property is new, To is "" when it is to be deleted (Plankton deletes a
// property that is set to "").
type PropertyChange struct{ Key, From, To string }

// Changes is what must change for a registered image to match the desired
// metadata. Members are compared separately (DiffMembers).
type Changes struct {
	Name            *StringChange
	DiskFormat      *StringChange
	ContainerFormat *StringChange
	IsPublic        *BoolChange
	// Properties are sorted by key.
	Properties []PropertyChange
}

// Diff compares the desired metadata with the registered image (nil: not
// registered, so everything is a change). Property keys are compared after
// NormalizeKey on both sides.
func Diff(desired Metadata, registered *Image) Changes {
	reg := MetadataFromImage(registered)
	var c Changes
	if desired.Name != reg.Name || registered == nil {
		c.Name = &StringChange{reg.Name, desired.Name}
	}
	if desired.DiskFormat != reg.DiskFormat || registered == nil {
		c.DiskFormat = &StringChange{reg.DiskFormat, desired.DiskFormat}
	}
	if desired.ContainerFormat != reg.ContainerFormat || registered == nil {
		c.ContainerFormat = &StringChange{reg.ContainerFormat, desired.ContainerFormat}
	}
	if desired.IsPublic != reg.IsPublic {
		c.IsPublic = &BoolChange{reg.IsPublic, desired.IsPublic}
	}
	want := make(map[string]string, len(desired.Properties))
	for k, v := range desired.Properties {
		want[NormalizeKey(k)] = v
	}
	for k, v := range want {
		if old, ok := reg.Properties[k]; !ok || old != v {
			c.Properties = append(c.Properties, PropertyChange{Key: k, From: old, To: v})
		}
	}
	for k, old := range reg.Properties {
		if _, ok := want[k]; !ok {
			c.Properties = append(c.Properties, PropertyChange{Key: k, From: old})
		}
	}
	sort.Slice(c.Properties, func(i, j int) bool { return c.Properties[i].Key < c.Properties[j].Key })
	return c
}

// Empty reports whether nothing needs to change.
func (c Changes) Empty() bool {
	return c.Name == nil && c.DiskFormat == nil && c.ContainerFormat == nil && c.IsPublic == nil && len(c.Properties) == 0
}

// SetProperties are the properties to add or change, key to desired value.
func (c Changes) SetProperties() map[string]string {
	out := map[string]string{}
	for _, p := range c.Properties {
		if p.To != "" {
			out[p.Key] = p.To
		}
	}
	return out
}

// DeleteProperties are the registered properties no longer wanted, sorted.
func (c Changes) DeleteProperties() []string {
	var out []string
	for _, p := range c.Properties {
		if p.To == "" {
			out = append(out, p.Key)
		}
	}
	return out
}

// Strings describes each change for people (syncctl plan, logs), e.g.
// `name: "a" -> "b"`, `property os: add "linux"`.
func (c Changes) Strings() []string {
	var out []string
	str := func(field string, ch *StringChange) {
		if ch != nil {
			out = append(out, fmt.Sprintf("%s: %q -> %q", field, ch.From, ch.To))
		}
	}
	str(ProvName, c.Name)
	str(ProvDiskFormat, c.DiskFormat)
	str(ProvContainerFormat, c.ContainerFormat)
	if c.IsPublic != nil {
		out = append(out, fmt.Sprintf("%s: %t -> %t", ProvIsPublic, c.IsPublic.From, c.IsPublic.To))
	}
	for _, p := range c.Properties {
		switch {
		case p.From == "":
			out = append(out, fmt.Sprintf("property %s: add %q", p.Key, p.To))
		case p.To == "":
			out = append(out, fmt.Sprintf("property %s: remove (was %q)", p.Key, p.From))
		default:
			out = append(out, fmt.Sprintf("property %s: %q -> %q", p.Key, p.From, p.To))
		}
	}
	return out
}

// DiffMembers compares the desired member list with the current one: add
// are the desired members missing (in desired's order), remove the current
// members not desired (in current's order). Uuids compare exactly, as Pithos
// compares sharing entries; duplicates count once.
func DiffMembers(desired, current []string) (add, remove []string) {
	for i, u := range desired {
		if !slices.Contains(current, u) && !slices.Contains(desired[:i], u) {
			add = append(add, u)
		}
	}
	for i, u := range current {
		if !slices.Contains(desired, u) && !slices.Contains(current[:i], u) {
			remove = append(remove, u)
		}
	}
	return add, remove
}

// DescribeMembers describes the result of DiffMembers for people, in the
// style of Changes.Strings.
func DescribeMembers(add, remove []string) []string {
	out := make([]string, 0, len(add)+len(remove))
	for _, u := range add {
		out = append(out, "member "+u+": add")
	}
	for _, u := range remove {
		out = append(out, "member "+u+": remove")
	}
	return out
}
