package ctl

import (
	"io"
	"os"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: only then does syncctl redraw
// the screen (status --watch) or draw progress bars. Anything else (a pipe,
// a file, a CI log) gets plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
