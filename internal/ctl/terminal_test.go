package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/rivo/uniseg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/jobs"
)

// Names a drop folder can hold: one retitles an xterm, one clears the
// screen, one reverses the rest of its line.
const (
	retitle     = "evil\x1b]0;pwned\x07.diskdump"
	clearScreen = "cls\x1b[2J.diskdump"
	bidi        = "gpj.\u202eexe.diskdump"
)

// archive puts a registration of rel into the archive.
func (e *env) archive(id, rel string) {
	e.t.Helper()
	p := jobs.RegisterPayload{V: jobs.PayloadVersion, ImageRef: jobs.ImageRef{Root: e.root, RelPath: rel, Container: "images", Object: rel}}
	b, err := json.Marshal(p)
	require.NoError(e.t, err)
	_, err = e.client.Enqueue(asynq.NewTask(jobs.TypeRegister, b), asynq.TaskID(id), asynq.Queue(jobs.QueueDefault))
	require.NoError(e.t, err)
	require.NoError(e.t, e.insp.ArchiveTask(jobs.QueueDefault, id))
}

// runTTY is run with stdout taken for a terminal (as --watch on a screen).
func (e *env) runTTY(args ...string) (int, string, string) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := Main(ctx, append([]string{"--config", e.cfgPath}, args...), Options{Stdout: &out, Stderr: &errOut,
		Getenv: func(string) string { return "" }, Terminal: func(io.Writer) bool { return true }})
	return code, out.String(), errOut.String()
}

// assertNoControls fails on any byte a terminal would act on, other than
// newline, in human output.
func assertNoControls(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e"} {
		assert.NotContains(t, out, bad, "%s: %q", what, out)
	}
}

func TestHostileNamesAreShownEscaped(t *testing.T) {
	e := newCloudEnv(t)
	for _, n := range []string{retitle, clearScreen, bidi} {
		writeFile(t, filepath.Join(e.root, n), "image bytes")
	}
	e.archive("register:t1", retitle)
	e.archive("register:t2", clearScreen)
	e.archive("register:t3", bidi)
	wantEscaped := []string{`evil\x1b]0;pwned\x07.diskdump`, `cls\x1b[2J.diskdump`, `gpj.\u202eexe.diskdump`}

	for _, args := range [][]string{{"status"}, {"list", "archived"}, {"list", "failed"}, {"images"}, {"plan"},
		{"status", "--watch", "--iterations", "2", "--interval", "10ms"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := e.run(args...)
			require.Equal(t, 0, code, "stderr: %s\nstdout: %q", errOut, out)
			assertNoControls(t, "stdout", out)
			assertNoControls(t, "stderr", errOut)
			for _, w := range wantEscaped {
				assert.Contains(t, out, w)
			}
		})
	}

	t.Run("status --watch on a terminal", func(t *testing.T) {
		code, out, errOut := e.runTTY("status", "--watch", "--iterations", "2", "--interval", "10ms")
		require.Equal(t, 0, code, errOut)
		frames := strings.Split(out, "\x1b[H\x1b[2J")
		require.Len(t, frames, 3, "two redrawn frames: %q", out)
		assert.Empty(t, frames[0])
		for _, f := range frames[1:] {
			assertNoControls(t, "frame", f)
			for _, w := range wantEscaped {
				assert.Contains(t, f, w)
			}
		}
	})

	t.Run("json keeps the names as data", func(t *testing.T) {
		var doc ListDoc
		e.runJSON(&doc, "list", "archived")
		var paths []string
		for _, task := range doc.Tasks {
			paths = append(paths, filepath.Base(task.Path))
		}
		assert.ElementsMatch(t, []string{retitle, clearScreen, bidi}, paths)
	})
}

func TestEscapeText(t *testing.T) {
	for in, want := range map[string]string{
		"plain name.diskdump": "plain name.diskdump",
		"Ελληνικά 映像 🚀":       "Ελληνικά 映像 🚀",
		"a\\b":                `a\\b`,
		"tab\there":           `tab\there`,
		"nl\nthere":           `nl\nthere`,
		"bell\a":              `bell\x07`,
		"del\x7f":             `del\x7f`,
		"csi\u009b2J":         `csi\u009b2J`,
		"bad\xffutf8":         `bad\xffutf8`,
		"rlo\u202eoff":        `rlo\u202eoff`,
		"isolate\u2067x":      `isolate\u2067x`,
	} {
		assert.Equal(t, want, escapeText(in), "%q", in)
	}
	assert.Equal(t, []byte("ok\nline \\x1b[2J\n"), sanitizeOutput([]byte("ok\nline \x1b[2J\n")))
}

func TestWatchWithoutATerminalIsPlain(t *testing.T) {
	e := newEnv(t, "miniredis")
	code, out, errOut := e.run("status", "--watch", "--iterations", "3", "--interval", "10ms")
	require.Equal(t, 0, code, errOut)
	assert.NotContains(t, out, "\x1b", "no screen control into a pipe")
	assert.Equal(t, 3, strings.Count(out, "imagesync status"), "one plain snapshot per refresh: %s", out)
	assert.NotContains(t, out, "Ctrl-C")

	t.Run("json is NDJSON", func(t *testing.T) {
		code, out, errOut := e.run("status", "--watch", "--json", "--iterations", "3", "--interval", "10ms")
		require.Equal(t, 0, code, errOut)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		require.Len(t, lines, 3, "one document per line: %s", out)
		for _, l := range lines {
			var doc StatusDoc
			require.NoError(t, json.Unmarshal([]byte(l), &doc), l)
		}
		_, help, _ := e.run("status", "--help")
		assert.Contains(t, help, "NDJSON")
	})
}

func TestTablesAlignWideCharacters(t *testing.T) {
	var buf bytes.Buffer
	tb := newTable(&buf, "IMAGE", "STATE", "NOTE")
	tb.row("debian.diskdump", "in-sync", "-")
	tb.row("映像/ubuntu.diskdump", "drifted", "-")
	tb.row("🚀.diskdump", "error", "-")
	tb.row("Ελληνικά.diskdump", "in-sync", "-")
	tb.flush()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, lines, 5)
	col := func(line, cell string) int {
		i := strings.Index(line, cell)
		require.GreaterOrEqual(t, i, 0, "%q in %q", cell, line)
		return uniseg.StringWidth(line[:i])
	}
	want := col(lines[0], "STATE")
	for i, cell := range []string{"in-sync", "drifted", "error", "in-sync"} {
		assert.Equal(t, want, col(lines[i+1], cell), "row %d: %q", i+1, lines[i+1])
	}
	assert.Equal(t, col(lines[0], "NOTE"), col(lines[2], "-"), "the column after the wide one too")
}

func TestStatusRowsKeepTheirOrder(t *testing.T) {
	active := []ActiveJob{
		{Task: Task{ID: "upload:b", Queue: "upload:n1"}},
		{Task: Task{ID: "upload:a", Queue: "upload:n1"}},
		{Task: Task{ID: "register:c", Queue: "default"}, ElapsedSeconds: 3},
		{Task: Task{ID: "upload:d", Queue: "upload"}},
	}
	now := time.Now()
	failed := []Task{
		{ID: "register:y", Queue: "default", LastFailedAt: &now},
		{ID: "register:x", Queue: "default", LastFailedAt: &now},
		{ID: "upload:z", Queue: "upload:n1"},
	}
	var firstA, firstF string
	for i := 0; i < 24; i++ {
		a := append([]ActiveJob(nil), active...)
		f := append([]Task(nil), failed...)
		// Every rotation and its reverse: the order Redis lists them in.
		rotA, rotF := i%len(a), i%len(f)
		a = append(a[rotA:], a[:rotA]...)
		f = append(f[rotF:], f[:rotF]...)
		if i%2 == 1 {
			for l, r := 0, len(a)-1; l < r; l, r = l+1, r-1 {
				a[l], a[r] = a[r], a[l]
			}
		}
		sortActive(a)
		sortFailures(f)
		ga, gf := fmt.Sprint(ids(a)), fmt.Sprint(taskIDs(f))
		if i == 0 {
			firstA, firstF = ga, gf
			assert.Equal(t, "[register:c upload:d upload:a upload:b]", ga)
			assert.Equal(t, "[register:x register:y upload:z]", gf)
			continue
		}
		assert.Equal(t, firstA, ga)
		assert.Equal(t, firstF, gf)
	}
}

func ids(a []ActiveJob) []string {
	var out []string
	for _, j := range a {
		out = append(out, j.ID)
	}
	return out
}

func taskIDs(ts []Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

// Whatever a name holds, its escaped form is valid UTF-8 with nothing a
// terminal acts on, and sanitizeOutput lets only newlines through.
func FuzzEscapeText(f *testing.F) {
	for _, s := range []string{retitle, clearScreen, bidi, "plain", "a\\b", "\xff\xfe", "\u009b2J", "映像\t\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for what, out := range map[string]string{"escapeText": escapeText(s), "sanitizeOutput": string(sanitizeOutput([]byte(s)))} {
			if !utf8.ValidString(out) {
				t.Fatalf("%s(%q) = %q: not UTF-8", what, s, out)
			}
			for _, r := range out {
				if unsafeRune(r) && !(what == "sanitizeOutput" && r == '\n') {
					t.Fatalf("%s(%q) = %q: holds %U", what, s, out, r)
				}
			}
		}
	})
}
