package ctl

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// File names, metafile contents and server messages reach syncctl's tables
// from people who can write to a drop folder. A terminal interprets control
// characters in them: "\x1b]0;…\x07" retitles the window, "\x1b[2J" clears
// it, "\r" overwrites a line, a bidi override reorders it. So every such
// character is shown escaped, the way Go writes it in a string literal
// ("\x1b", "\u202e"), and a backslash as "\\" so that an escape can't be
// forged. --json output is left to encoding/json, which escapes C0 controls
// itself; its values are data, not display.

// escapeText returns s with every character a terminal would act on, and
// every byte that is not UTF-8, escaped.
func escapeText(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\\' || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune: C0 and C1 controls and DEL (unicode.IsControl), the bidi
// marks, embeddings, overrides and isolates that reorder what follows them
// on the line, and the line and paragraph separators.
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u061c', r == '\u200e', r == '\u200f', r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	case r == '\u2028', r == '\u2029':
		return true
	}
	return false
}

// sanitizeOutput escapes, in rendered human output, any control character
// other than newline that a renderer let through: the last line of defence
// behind escapeText on every value.
func sanitizeOutput(b []byte) []byte {
	clean := true
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if (r == utf8.RuneError && size == 1) || (r != '\n' && unsafeRune(r)) {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return b
	}
	var out []byte
	for _, line := range strings.SplitAfter(string(b), "\n") {
		body, nl := strings.CutSuffix(line, "\n")
		// Backslashes are already escaped by escapeText where it ran;
		// here only what it missed is escaped.
		for i := 0; i < len(body); {
			r, size := utf8.DecodeRuneInString(body[i:])
			if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
				out = append(out, escapeText(body[i:i+size])...)
			} else {
				out = append(out, body[i:i+size]...)
			}
			i += size
		}
		if nl {
			out = append(out, '\n')
		}
	}
	return out
}
