package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxMetafileSize bounds what ParseMetafile and LoadChain accept. kamaki's
// .meta files are well under a kilobyte; anything near this is not a metafile.
const MaxMetafileSize = 1 << 20

// Metafile is one level of the metadata precedence chain: a kamaki .meta
// file, a _template.meta, or the config defaults. Only what the level sets is
// recorded, so a merge can tell "unset" (nil / MembersSet false) from "set to
// empty or false".
type Metafile struct {
	// Source names the level in messages and provenance: the file's path, or
	// a description such as "config watch[0].defaults".
	Source string

	Name            *string
	DiskFormat      *string
	ContainerFormat *string
	IsPublic        *bool
	// Properties are keyed by NormalizeKey of the key as written. A nil value
	// (JSON null) or "" removes a property inherited from a lower level.
	Properties map[string]*string
	// Members replaces the inherited member list when MembersSet is true
	// (an empty list then means "shared with nobody").
	Members    []string
	MembersSet bool

	// Warnings are things ignored while parsing: server-set fields of a
	// metafile downloaded from the cloud, unknown fields, an empty file.
	Warnings []Warning
}

// MetafileError is a metafile that cannot be used. It names the file, the
// position (when the input is a file) and the field, so a person can fix it.
type MetafileError struct {
	File   string
	Line   int // 1-based; 0 when unknown (e.g. config defaults)
	Column int // 1-based, in characters
	Field  string
	Msg    string
	Err    error // the underlying cause, if any
}

func (e *MetafileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *MetafileError) Unwrap() error { return e.Err }

// Warning is something in a metafile that was ignored. It never stops a
// registration, but it is shown by syncctl plan and logged.
type Warning struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

func (w Warning) String() string {
	e := MetafileError{File: w.File, Line: w.Line, Column: w.Column, Field: w.Field, Msg: w.Msg}
	return e.Error()
}

// Canonical field names (NormalizeKey of the dashed kamaki keys) and the
// dashed spelling used in messages and rendering.
const (
	fieldName            = "name"
	fieldDiskFormat      = "disk_format"
	fieldContainerFormat = "container_format"
	fieldIsPublic        = "is_public"
	fieldProperties      = "properties"
	fieldMembers         = "members"
)

// serverFields are set by Plankton, not by the user. They appear in every
// .meta that kamaki or imagesync uploads, so a downloaded one is a valid
// template: they are ignored with a warning, never an error.
var serverFields = map[string]bool{
	"id": true, "owner": true, "location": true, "checksum": true, "size": true,
	"status": true, "created_at": true, "updated_at": true, "deleted_at": true,
	"is_snapshot": true, "description": true, "store": true,
}

const knownFields = "name, disk-format, container-format, is-public, properties, members"

// dashed is how a canonical field name is spelt in kamaki's format.
func dashed(field string) string { return strings.ReplaceAll(field, "_", "-") }

// ParseMetafile parses a kamaki .meta JSON object. name is the file's path as
// it should appear in messages. It accepts kamaki's dashed keys and their
// underscore or differently-cased variants, "True"/"False" strings for
// is-public, numbers and booleans as property values (taken as written), and
// null properties (which remove an inherited property). Placeholders in name
// and property values are checked here, and expanded by Resolve.
func ParseMetafile(name string, data []byte) (*Metafile, error) {
	if len(data) > MaxMetafileSize {
		return nil, &MetafileError{File: name, Msg: fmt.Sprintf("file is %d bytes, more than the %d a metafile may have", len(data), MaxMetafileSize)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // editors on Windows add a BOM
	if !utf8.Valid(data) {
		off := invalidUTF8Offset(data)
		line, col := lineCol(data, off)
		return nil, &MetafileError{File: name, Line: line, Column: col, Msg: fmt.Sprintf("not valid UTF-8 (byte 0x%02x); save the file as UTF-8", data[off])}
	}
	m := &Metafile{Source: name}
	if len(bytes.TrimSpace(data)) == 0 {
		m.Warnings = append(m.Warnings, Warning{File: name, Msg: "empty file, read as {}"})
		return m, nil
	}
	// A RawMessage checks the syntax without converting numbers (1e400 is
	// valid JSON and a valid property value), and reports the offset.
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		off := 0
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = int(se.Offset) - 1 // Offset counts the offending byte
			if strings.Contains(se.Error(), "end of JSON input") {
				off = len(data)
			}
		}
		off = max(0, min(off, len(data)))
		line, col := lineCol(data, off)
		return nil, &MetafileError{File: name, Line: line, Column: col, Msg: "invalid JSON: " + err.Error(), Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	root, err := readNode(dec, data)
	if err != nil {
		// Unreachable for input json.Unmarshal accepted; kept so a decoder
		// difference becomes an error, not a panic.
		return nil, &MetafileError{File: name, Msg: "invalid JSON: " + err.Error(), Err: err}
	}
	b := builder{m: m, data: data}
	if err := b.build(root); err != nil {
		return nil, err
	}
	return m, nil
}

// MetafileFromMap builds a Metafile from a decoded YAML or JSON map, such as a
// watch entry's `defaults:` in the config, with the same rules and messages as
// ParseMetafile (without positions). source names it in messages.
func MetafileFromMap(source string, m map[string]any) (*Metafile, error) {
	root, err := nodeFromValue(m)
	if err != nil {
		return nil, &MetafileError{File: source, Msg: err.Error()}
	}
	mf := &Metafile{Source: source}
	b := builder{m: mf}
	if err := b.build(root); err != nil {
		return nil, err
	}
	return mf, nil
}

// node is a JSON value with the byte offset where it starts (-1 when it did
// not come from a file), so errors can point at it.
type node struct {
	kind  nodeKind
	str   string // string value, or a number or boolean as written
	keys  []string
	kOffs []int
	vals  []*node // object values, or array elements
	off   int
}

type nodeKind int

const (
	kindNull nodeKind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

func (k nodeKind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an object", "an array"}[k]
}

// readNode reads one value from dec, recording where each value and key
// starts. Decoder.InputOffset is the end of the previous token, so the start
// of the next one is found by skipping separators.
func readNode(dec *json.Decoder, data []byte) (*node, error) {
	off := skipSeparators(data, int(dec.InputOffset()))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	n := &node{off: off}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			n.kind = kindObject
			for dec.More() {
				koff := skipSeparators(data, int(dec.InputOffset()))
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is %T", kt)
				}
				v, err := readNode(dec, data)
				if err != nil {
					return nil, err
				}
				n.keys, n.kOffs, n.vals = append(n.keys, key), append(n.kOffs, koff), append(n.vals, v)
			}
		} else {
			n.kind = kindArray
			for dec.More() {
				v, err := readNode(dec, data)
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, v)
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
	case string:
		n.kind, n.str = kindString, t
	case json.Number:
		n.kind, n.str = kindNumber, t.String()
	case bool:
		n.kind, n.str = kindBool, strconv.FormatBool(t)
	case nil:
		n.kind = kindNull
	default:
		return nil, fmt.Errorf("unexpected token %T", tok)
	}
	return n, nil
}

func skipSeparators(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r', ',', ':':
			i++
		default:
			return i
		}
	}
	return i
}

// nodeFromValue converts what YAML or JSON decoding into `any` produces.
// Map keys are sorted so errors do not depend on map order.
func nodeFromValue(v any) (*node, error) {
	n := &node{off: -1}
	switch x := v.(type) {
	case nil:
		n.kind = kindNull
	case string:
		n.kind, n.str = kindString, x
	case bool:
		n.kind, n.str = kindBool, strconv.FormatBool(x)
	case int:
		n.kind, n.str = kindNumber, strconv.Itoa(x)
	case int64:
		n.kind, n.str = kindNumber, strconv.FormatInt(x, 10)
	case uint64:
		n.kind, n.str = kindNumber, strconv.FormatUint(x, 10)
	case float64:
		n.kind, n.str = kindNumber, strconv.FormatFloat(x, 'g', -1, 64)
	case json.Number:
		n.kind, n.str = kindNumber, x.String()
	case time.Time:
		// yaml.v3 turns an unquoted 2024-01-02 into a time.Time.
		n.kind = kindString
		if x.Equal(x.Truncate(24*time.Hour)) && x.Location() == time.UTC {
			n.str = x.Format(time.DateOnly)
		} else {
			n.str = x.Format(time.RFC3339Nano)
		}
	case map[string]any:
		n.kind = kindObject
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c, err := nodeFromValue(x[k])
			if err != nil {
				return nil, err
			}
			n.keys, n.kOffs, n.vals = append(n.keys, k), append(n.kOffs, -1), append(n.vals, c)
		}
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[fmt.Sprint(k)] = v
		}
		return nodeFromValue(m)
	case []any:
		n.kind = kindArray
		for _, e := range x {
			c, err := nodeFromValue(e)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, c)
		}
	case []string:
		n.kind = kindArray
		for _, e := range x {
			n.vals = append(n.vals, &node{kind: kindString, str: e, off: -1})
		}
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[k] = v
		}
		return nodeFromValue(m)
	default:
		return nil, fmt.Errorf("unsupported value %v of type %T", v, v)
	}
	return n, nil
}

// builder turns a node tree into a Metafile. data is the file (nil for maps),
// used to turn offsets into line and column.
type builder struct {
	m    *Metafile
	data []byte
}

func (b *builder) pos(off int) (line, col int) {
	if off < 0 || b.data == nil {
		return 0, 0
	}
	return lineCol(b.data, off)
}

func (b *builder) errAt(off int, field, format string, args ...any) *MetafileError {
	line, col := b.pos(off)
	return &MetafileError{File: b.m.Source, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (b *builder) warnAt(off int, field, format string, args ...any) {
	line, col := b.pos(off)
	b.m.Warnings = append(b.m.Warnings, Warning{File: b.m.Source, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) build(root *node) error {
	if root.kind != kindObject {
		return b.errAt(root.off, "", "a metafile must be a JSON object ({...}), not %s", root.kind)
	}
	seen := map[string]int{} // canonical field → index of its first key
	for i, key := range root.keys {
		koff, v := root.kOffs[i], root.vals[i]
		canon := NormalizeKey(key)
		if j, dup := seen[canon]; dup {
			line, _ := b.pos(root.kOffs[j])
			where := ""
			if line > 0 {
				where = fmt.Sprintf(" on line %d", line)
			}
			return b.errAt(koff, key, "given twice (also as %q%s); keep one", root.keys[j], where)
		}
		seen[canon] = i
		var err error
		switch canon {
		case fieldName:
			b.m.Name, err = b.stringField(key, v, true)
		case fieldDiskFormat:
			b.m.DiskFormat, err = b.stringField(key, v, false)
		case fieldContainerFormat:
			b.m.ContainerFormat, err = b.stringField(key, v, false)
		case fieldIsPublic:
			b.m.IsPublic, err = b.boolField(key, v)
		case fieldProperties:
			err = b.properties(key, v)
		case fieldMembers:
			err = b.members(key, v)
		default:
			if serverFields[canon] {
				b.warnAt(koff, key, "ignored: set by the server, not by a metafile")
			} else {
				b.warnAt(koff, key, "unknown field ignored (known: %s)", knownFields)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stringField reads name, disk-format or container-format. null leaves the
// field unset. Numbers are taken as written, as kamaki str()s every value.
func (b *builder) stringField(key string, v *node, placeholders bool) (*string, error) {
	switch v.kind {
	case kindNull:
		return nil, nil
	case kindString, kindNumber:
		if placeholders {
			if err := CheckPlaceholders(v.str); err != nil {
				e := b.errAt(v.off, key, "%v", err)
				e.Err = err
				return nil, e
			}
		}
		s := v.str
		return &s, nil
	}
	return nil, b.errAt(v.off, key, "must be a string, not %s", v.kind)
}

// boolField reads is-public: a JSON boolean, or kamaki's "True"/"False"
// strings in any case.
func (b *builder) boolField(key string, v *node) (*bool, error) {
	var t bool
	switch v.kind {
	case kindNull:
		return nil, nil
	case kindBool:
		t = v.str == "true"
	case kindString:
		switch strings.ToLower(strings.TrimSpace(v.str)) {
		case "true":
			t = true
		case "false":
			t = false
		default:
			return nil, b.errAt(v.off, key, "must be true or false, not %q", v.str)
		}
	default:
		return nil, b.errAt(v.off, key, "must be true or false, not %s", v.kind)
	}
	return &t, nil
}

func (b *builder) properties(key string, v *node) error {
	switch v.kind {
	case kindNull:
		return nil
	case kindObject:
	default:
		return b.errAt(v.off, key, "must be an object of property names to values, not %s", v.kind)
	}
	props := make(map[string]*string, len(v.keys))
	first := map[string]int{}
	for i, pk := range v.keys {
		pv := v.vals[i]
		field := key + "." + pk
		norm := NormalizeKey(pk)
		if j, dup := first[norm]; dup {
			return b.errAt(v.kOffs[i], field, "same property as %q (Plankton compares names lowercased, punctuation as '_': both are %q); keep one", v.keys[j], norm)
		}
		first[norm] = i
		switch pv.kind {
		case kindNull:
			props[norm] = nil
		case kindString, kindNumber, kindBool:
			if err := CheckPlaceholders(pv.str); err != nil {
				e := b.errAt(pv.off, field, "%v", err)
				e.Err = err
				return e
			}
			s := pv.str
			props[norm] = &s
		default:
			return b.errAt(pv.off, field, "must be a string, number or boolean, not %s", pv.kind)
		}
	}
	b.m.Properties = props
	return nil
}

func (b *builder) members(key string, v *node) error {
	switch v.kind {
	case kindNull:
		return nil
	case kindArray:
	default:
		return b.errAt(v.off, key, "must be a list of user uuids, not %s", v.kind)
	}
	members := make([]string, 0, len(v.vals))
	for i, e := range v.vals {
		if e.kind != kindString {
			return b.errAt(e.off, fmt.Sprintf("%s[%d]", key, i), "must be a user uuid string, not %s", e.kind)
		}
		members = append(members, e.str)
	}
	b.m.Members, b.m.MembersSet = members, true
	return nil
}

// lineCol turns a byte offset into a 1-based line and a 1-based column
// counted in characters, as editors show them.
func lineCol(data []byte, off int) (line, col int) {
	off = max(0, min(off, len(data)))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte{'\n'})
	start := bytes.LastIndexByte(before, '\n') + 1
	col = 1 + utf8.RuneCount(before[start:])
	return line, col
}

func invalidUTF8Offset(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(data)
}

// readLimited reads at most MaxMetafileSize+1 bytes so an oversized file is
// detected without reading all of it.
func readLimited(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, MaxMetafileSize+1))
}
