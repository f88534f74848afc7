package wire

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Python 2 urllib.quote/unquote, as Pithos (safe '/=,:@; "') and Plankton
// (safe '/') apply them to header values.
func TestQuoteUnquote(t *testing.T) {
	assert.Equal(t, "My%20Img%20%E2%98%82/a_b.c-d%7E", Quote("My Img ☂/a_b.c-d~", "/"), "Python 2 quotes '~'")
	assert.Equal(t, "a=b,c:d@e; f \"g\"/h%25", Quote("a=b,c:d@e; f \"g\"/h%", "/=,:@; \""))
	for in, want := range map[string]string{
		"a%20b%zz%2+": "a b%zz%2+",
		"%E2%98%82":   "☂",
		"100%":        "100%",
		"%4":          "%4",
		"%41%4a%4A":   "AJJ",
		"plain":       "plain",
	} {
		assert.Equal(t, want, Unquote(in), in)
	}
}
