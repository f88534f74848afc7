package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The file is read into a yaml.Node tree and walked against Config's fields,
// so that every unknown key and every value of the wrong kind is reported in
// one pass, by key path (cloud.tokn, watch[1].public), rather than one at a
// time with yaml's Go type names. A field that cannot be decoded keeps its
// default, so the checks in validate.go still run over the rest.

// decoder collects problems while it fills a Config.
type decoder struct {
	problems *problems
	lines    map[string]int // key path -> line of its value, for later checks
}

// decodeYAML fills c from data and reports every problem it meets.
func decodeYAML(data []byte, c *Config, p *problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// The YAML itself is broken: nothing below can be trusted.
		p.add("", "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return // an empty file: the defaults
	}
	if c.lines == nil {
		c.lines = map[string]int{}
	}
	d := decoder{problems: p, lines: c.lines}
	d.value("", doc.Content[0], reflect.ValueOf(c).Elem())
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d decoder) bad(path string, n *yaml.Node, format string, a ...any) {
	d.problems.addLine(path, n.Line, format, a...)
}

// value decodes n into v, which is addressable, and reports whether it
// could (a problem has been recorded when not).
func (d decoder) value(path string, n *yaml.Node, v reflect.Value) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return true // "key:" with no value leaves the default
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			d.bad(path, n, "want a single value, found %s", describe(n))
			return false
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.bad(path, n, "%s", err.Error())
			return false
		}
		return true
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.mapping(path, n, v)
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		if !d.value(path, n, elem.Elem()) {
			return false
		}
		v.Set(elem)
		return true
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.bad(path, n, "want a list, found %s", describe(n))
			return false
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		ok := true
		for i, item := range n.Content {
			d.lines[fmt.Sprintf("%s[%d]", path, i)] = item.Line
			ok = d.value(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i)) && ok
		}
		v.Set(s)
		return ok
	case reflect.Map, reflect.Interface:
		// Free-form values (watch defaults): any YAML will do, as long as a
		// mapping is given where one is wanted.
		if v.Kind() == reflect.Map && n.Kind != yaml.MappingNode {
			d.bad(path, n, "want a mapping of keys, found %s", describe(n))
			return false
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.bad(path, n, "%s", plainYAMLError(err))
			return false
		}
		return true
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			d.bad(path, n, "want %s, found %s", kindWord(v.Kind()), describe(n))
			return false
		}
		tmp := reflect.New(v.Type())
		if err := n.Decode(tmp.Interface()); err != nil {
			d.bad(path, n, "%q is not %s", n.Value, kindWord(v.Kind()))
			return false
		}
		v.Set(tmp.Elem())
		return true
	default:
		// A field type this walker does not know: a programming error, said
		// plainly rather than silently ignored.
		d.bad(path, n, "cannot be read (unsupported field type %s)", v.Type())
		return false
	}
}

// mapping decodes a YAML mapping into the struct v, key by key.
func (d decoder) mapping(path string, n *yaml.Node, v reflect.Value) bool {
	if n.Kind != yaml.MappingNode {
		d.bad(path, n, "want a mapping of keys (%s), found %s", strings.Join(fieldNames(v.Type()), ", "), describe(n))
		return false
	}
	ok := true
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.bad(key, k, "set twice (first on line %d)", first)
			ok = false
			continue
		}
		seen[k.Value] = k.Line
		d.lines[key] = k.Line
		f, found := fieldByKey(v.Type(), k.Value)
		if !found {
			msg := "unknown key"
			if s := suggest(k.Value, fieldNames(v.Type())); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", join(path, s))
			}
			d.bad(key, k, "%s", msg)
			ok = false
			continue
		}
		ok = d.value(key, val, v.FieldByIndex(f.Index)) && ok
	}
	return ok
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what a node holds, in YAML's words.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func kindWord(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	}
	return "a value"
}

// yamlKey is a struct field's YAML key ("" for fields not in the file).
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for _, f := range reflect.VisibleFields(t) {
		if len(f.Index) == 1 && yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func fieldNames(t reflect.Type) []string {
	var out []string
	for _, f := range reflect.VisibleFields(t) {
		if k := yamlKey(f); k != "" && len(f.Index) == 1 {
			out = append(out, k)
		}
	}
	return out
}

// suggest returns the known key closest to a misspelt one, if it is close.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// plainYAMLError drops yaml's "yaml: unmarshal errors:" framing and Go type
// names from a decoding error of a free-form value.
func plainYAMLError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := slices.Clone(te.Errors)
		for i, m := range msgs {
			if j := strings.Index(m, " into "); j >= 0 {
				msgs[i] = m[:j]
			}
		}
		return "cannot read " + strings.Join(msgs, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}
