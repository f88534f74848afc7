package image

import (
	"strings"
	"testing"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlaceholdersFor(t *testing.T) {
	date := time.Date(2024, 3, 9, 23, 30, 0, 0, time.FixedZone("UTC-2", -2*3600)) // 2024-03-10 in UTC
	cases := []struct {
		rel  string
		want Placeholders
	}{
		{"ubuntu-22.04.diskdump", Placeholders{Name: "ubuntu-22.04", File: "ubuntu-22.04.diskdump", RelPath: "ubuntu-22.04.diskdump", Dir: "", Date: "2024-03-10"}},
		{"linux/debian/debian 12.diskdump", Placeholders{Name: "debian 12", File: "debian 12.diskdump", RelPath: "linux/debian/debian 12.diskdump", Dir: "linux/debian", Date: "2024-03-10"}},
		{"a/noext", Placeholders{Name: "noext", File: "noext", RelPath: "a/noext", Dir: "a", Date: "2024-03-10"}},
		{"a/b.tar.gz", Placeholders{Name: "b.tar", File: "b.tar.gz", RelPath: "a/b.tar.gz", Dir: "a", Date: "2024-03-10"}},
		{".hidden", Placeholders{Name: ".hidden", File: ".hidden", RelPath: ".hidden", Dir: "", Date: "2024-03-10"}},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, PlaceholdersFor(c.rel, date), c.rel)
	}
}

func TestExpandPlaceholders(t *testing.T) {
	p := Placeholders{Name: "deb", File: "deb.diskdump", RelPath: "os/deb.diskdump", Dir: "os", Date: "2024-01-02"}
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"", ""},
		{"{{.Name}}", "deb"},
		{"{{.File}}", "deb.diskdump"},
		{"{{.RelPath}}", "os/deb.diskdump"},
		{"{{.Dir}}", "os"},
		{"{{.Date}}", "2024-01-02"},
		{"{{ .Name }} built {{.Date}}", "deb built 2024-01-02"},
		{"{{\t.Name\n}}", "deb"},
		{"{{.Name}}{{.Name}}", "debdeb"},
		{"a }} b } {", "a }} b } {"},
		{"{{.Name}}}", "deb}"},
		{`{{"{{"}}.Name}}`, "{{.Name}}"},
		{"{{`{{`}}", "{{"},
		{`{{ "}}" }}x`, "}}x"},
		{`{{"\u00e9"}}`, "é"},
		{"ünïcödé {{.Dir}}/ü", "ünïcödé os/ü"},
	}
	for _, c := range cases {
		got, err := ExpandPlaceholders(c.in, p)
		require.NoError(t, err, c.in)
		assert.Equal(t, c.want, got, c.in)
		assert.NoError(t, CheckPlaceholders(c.in), c.in)
	}
}

func TestExpandPlaceholdersErrors(t *testing.T) {
	const known = ".Name .File .RelPath .Dir .Date"
	unsupported := func(action string) string {
		return "unsupported template action " + action + ": only the placeholders " + known +
			` are allowed (write {{"{{"}} for a literal "{{")`
	}
	cases := []struct{ in, want, action string }{
		{"{{.Foo}}", "unknown placeholder {{.Foo}}; known: " + known, "{{.Foo}}"},
		{"x {{ .name }} y", "unknown placeholder {{ .name }}; known: " + known, "{{ .name }}"},
		{"{{range .Name}}x{{end}}", unsupported("{{range .Name}}"), "{{range .Name}}"},
		{"{{if .Name}}", unsupported("{{if .Name}}"), "{{if .Name}}"},
		{"{{.Name | printf \"%s\"}}", unsupported(`{{.Name | printf "%s"}}`), `{{.Name | printf "%s"}}`},
		{"{{printf \"%s\" .Name}}", unsupported(`{{printf "%s" .Name}}`), `{{printf "%s" .Name}}`},
		{"{{- .Name}}", unsupported("{{- .Name}}"), "{{- .Name}}"},
		{"{{.Name -}}", unsupported("{{.Name -}}"), "{{.Name -}}"},
		{"{{/* note */}}", unsupported("{{/* note */}}"), "{{/* note */}}"},
		{"{{}}", unsupported("{{}}"), "{{}}"},
		{"{{.}}", unsupported("{{.}}"), "{{.}}"},
		{"{{.Name.X}}", unsupported("{{.Name.X}}"), "{{.Name.X}}"},
		{"{{$x := 1}}", unsupported("{{$x := 1}}"), "{{$x := 1}}"},
		{`{{"a" "b"}}`, unsupported(`{{"a" "b"}}`), `{{"a" "b"}}`},
		{"{{'a'}}", unsupported("{{'a'}}"), "{{'a'}}"},
		{"name {{.Name", `unterminated placeholder {{.Name: missing "}}"`, "{{.Name"},
		{"{{", `unterminated placeholder {{: missing "}}"`, "{{"},
		{`{{"abc}}`, `malformed string in {{"abc}}: invalid syntax`, `{{"abc}}`},
		{"{{.Name}} {{.Size}}", "unknown placeholder {{.Size}}; known: " + known, "{{.Size}}"},
	}
	for _, c := range cases {
		_, err := ExpandPlaceholders(c.in, Placeholders{Name: "n"})
		require.Error(t, err, c.in)
		assert.Equal(t, c.want, err.Error(), c.in)
		var pe *PlaceholderError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, c.action, pe.Action, c.in)
		assert.EqualError(t, CheckPlaceholders(c.in), c.want, c.in)
	}
}

func TestPlaceholderErrorClipsLongActions(t *testing.T) {
	in := "{{ .Name " + strings.Repeat("é", 80)
	_, err := ExpandPlaceholders(in, Placeholders{})
	require.Error(t, err)
	var pe *PlaceholderError
	require.ErrorAs(t, err, &pe)
	assert.True(t, strings.HasSuffix(pe.Action, "..."))
	assert.True(t, utf8.ValidString(pe.Action), "clipped on a character boundary")
	assert.LessOrEqual(t, len(pe.Action), 60)
}

func TestEscapePlaceholders(t *testing.T) {
	p := Placeholders{Name: "n"}
	for _, s := range []string{"", "plain", "{{", "{{{", "{{.Name}}", `{{"{{"}}`, "}}{{}}", "a{{b{{c"} {
		esc := EscapePlaceholders(s)
		got, err := ExpandPlaceholders(esc, p)
		require.NoError(t, err, s)
		assert.Equal(t, s, got, s)
	}
}

// placeholderData is what text/template sees in FuzzPlaceholders.
type placeholderData struct{ Name, File, RelPath, Dir, Date string }

// FuzzPlaceholders checks the placeholder parser against text/template: what
// it accepts, text/template accepts and expands to the same text (the subset
// is real text/template), and escaping round-trips.
func FuzzPlaceholders(f *testing.F) {
	for _, s := range []string{
		"", "x", "{{.Name}}", "{{ .Date }}-{{.Dir}}", `{{"{{"}}`, "{{`a`}}", "{{.Foo}}", "{{range .X}}{{end}}",
		"{{", "}}", "{{{.Name}}}", `{{"}}"}}`, "{{- .Name -}}", "{{\n.RelPath\n}}", `{{"\x41"}}`, "{{.File}}.bak",
	} {
		f.Add(s)
	}
	p := Placeholders{Name: "img", File: "img.diskdump", RelPath: "d/img.diskdump", Dir: "d", Date: "2024-01-02"}
	data := placeholderData(p)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ExpandPlaceholders(s, p)
		checkErr := CheckPlaceholders(s)
		if (err == nil) != (checkErr == nil) {
			t.Fatalf("Expand error %v but Check error %v for %q", err, checkErr, s)
		}
		esc := EscapePlaceholders(s)
		back, eerr := ExpandPlaceholders(esc, p)
		if eerr != nil || back != s {
			t.Fatalf("escape of %q = %q expands to %q, %v", s, esc, back, eerr)
		}
		if err != nil {
			var pe *PlaceholderError
			require.ErrorAs(t, err, &pe)
			return
		}
		if !strings.Contains(s, "{{") && got != s {
			t.Fatalf("text without placeholders changed: %q -> %q", s, got)
		}
		if !utf8.ValidString(s) {
			return // metafiles are valid UTF-8; text/template differs on invalid input
		}
		tmpl, terr := template.New("x").Option("missingkey=error").Parse(s)
		if terr != nil {
			t.Fatalf("accepted %q (-> %q) but text/template rejects it: %v", s, got, terr)
		}
		var b strings.Builder
		if terr := tmpl.Execute(&b, data); terr != nil {
			t.Fatalf("accepted %q but text/template fails: %v", s, terr)
		}
		if b.String() != got {
			t.Fatalf("%q: got %q, text/template gives %q", s, got, b.String())
		}
	})
}
