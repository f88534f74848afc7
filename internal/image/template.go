package image

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Placeholders are the values a metafile's name and property values may
// refer to, with text/template syntax: {{.Name}}, {{.File}}, {{.RelPath}},
// {{.Dir}} and {{.Date}}. Nothing else of text/template is supported except
// a quoted string, {{"{{"}}, which is how a literal "{{" is written.
type Placeholders struct {
	// Name is the file name without its last extension: "ubuntu-22.04" for
	// "ubuntu-22.04.diskdump".
	Name string
	// File is the file name: "ubuntu-22.04.diskdump".
	File string
	// RelPath is the path relative to the watch root, '/'-separated.
	RelPath string
	// Dir is RelPath's directory, "" (not ".") for an image at the root, so
	// that it can be used without producing a stray "./".
	Dir string
	// Date is YYYY-MM-DD of the time given to PlaceholdersFor in UTC, so
	// that every node computes the same metadata for the same file.
	Date string
}

// placeholderNames lists the known placeholders in the order messages show.
var placeholderNames = []string{"Name", "File", "RelPath", "Dir", "Date"}

// PlaceholdersFor computes the placeholder values of the image at relPath
// ('/'-separated, relative to the watch root) with the given date (normally
// the image file's mtime).
func PlaceholdersFor(relPath string, date time.Time) Placeholders {
	file := path.Base(relPath)
	name := file
	if i := strings.LastIndexByte(file, '.'); i > 0 {
		name = file[:i]
	}
	dir := path.Dir(relPath)
	if dir == "." || dir == "/" {
		dir = ""
	}
	return Placeholders{Name: name, File: file, RelPath: relPath, Dir: dir, Date: date.UTC().Format(time.DateOnly)}
}

func (p Placeholders) lookup(field string) (string, bool) {
	switch field {
	case "Name":
		return p.Name, true
	case "File":
		return p.File, true
	case "RelPath":
		return p.RelPath, true
	case "Dir":
		return p.Dir, true
	case "Date":
		return p.Date, true
	}
	return "", false
}

// PlaceholderError is a placeholder or template action that cannot be
// expanded. Action is the text between the braces as written.
type PlaceholderError struct {
	Action string
	Msg    string
}

func (e *PlaceholderError) Error() string { return e.Msg }

func knownPlaceholders() string {
	return "." + strings.Join(placeholderNames, " .")
}

// CheckPlaceholders reports whether s expands without error, so a broken
// template is reported when it is read, not only when an image uses it.
func CheckPlaceholders(s string) error {
	_, err := expand(s, nil)
	return err
}

// ExpandPlaceholders replaces each {{.Field}} in s with its value.
func ExpandPlaceholders(s string, p Placeholders) (string, error) {
	return expand(s, &p)
}

// EscapePlaceholders makes s expand to itself: every "{{" is written as
// {{"{{"}}. RenderMetafile uses it so that a rendered .meta, reused as a
// template, reproduces the registered values exactly.
func EscapePlaceholders(s string) string {
	return strings.ReplaceAll(s, "{{", `{{"{{"}}`)
}

// expand is a small parser for the subset of text/template that metafiles
// allow. With p nil it only checks. It is explicit rather than text/template
// with a restricted FuncMap because text/template would still accept range,
// if, with, pipelines and builtin functions, and its errors do not say
// which placeholders exist.
func expand(s string, p *Placeholders) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		inner := strings.TrimLeft(rest, " \t\r\n")
		var val string
		var end int // index in rest just past "}}"
		if inner != "" && (inner[0] == '"' || inner[0] == '`') {
			lit, n, err := quotedPrefix(inner)
			if err != nil {
				return "", &PlaceholderError{Action: clip(s[i:]), Msg: fmt.Sprintf("malformed string in %s: %v", clip(s[i:]), err)}
			}
			after := strings.TrimLeft(inner[n:], " \t\r\n")
			if !strings.HasPrefix(after, "}}") {
				return "", unsupported(s[i:])
			}
			val = lit
			end = len(rest) - len(after) + 2
		} else {
			j := strings.Index(rest, "}}")
			if j < 0 {
				return "", &PlaceholderError{Action: clip(s[i:]), Msg: fmt.Sprintf("unterminated placeholder %s: missing \"}}\"", clip(s[i:]))}
			}
			body := strings.Trim(rest[:j], " \t\r\n")
			action := "{{" + rest[:j] + "}}"
			if !strings.HasPrefix(body, ".") || !isIdent(body[1:]) {
				return "", unsupported(action)
			}
			field := body[1:]
			v, ok := Placeholders{}.lookup(field)
			if !ok {
				return "", &PlaceholderError{Action: action, Msg: fmt.Sprintf("unknown placeholder %s; known: %s", action, knownPlaceholders())}
			}
			if p != nil {
				v, _ = p.lookup(field)
			}
			val = v
			end = j + 2
		}
		b.WriteString(val)
		s = rest[end:]
	}
}

func unsupported(action string) *PlaceholderError {
	action = clip(action)
	return &PlaceholderError{Action: action, Msg: fmt.Sprintf(
		"unsupported template action %s: only the placeholders %s are allowed (write {{\"{{\"}} for a literal \"{{\")",
		action, knownPlaceholders())}
}

// clip shortens an action quoted in a message to its first "}}", and to a
// readable length.
func clip(s string) string {
	if j := strings.Index(s, "}}"); j >= 0 {
		s = s[:j+2]
	}
	if len(s) > 60 {
		cut := 57
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// quotedPrefix reads the Go string literal at the start of s, as
// text/template does, and returns its value and length.
func quotedPrefix(s string) (string, int, error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", 0, err
	}
	v, err := strconv.Unquote(q)
	if err != nil {
		return "", 0, err
	}
	return v, len(q), nil
}

// isIdent accepts the field names text/template accepts after a dot, in
// their ASCII form, which covers every known placeholder.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}
