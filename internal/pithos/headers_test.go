package pithos

import (
	"net/http"
	"net/url"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/rest"
)

// FuzzQuoteHeaderValue: what quoteHeaderValue sends, the Python-style
// unquoting of the other side restores.
func FuzzQuoteHeaderValue(f *testing.F) {
	for _, s := range []string{"", "a%20b", "%", "%%41", "%C3%BC", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := rest.Unquote(s)
		// Where Go's strict decoder succeeds, the lenient one agrees.
		if want, err := url.PathUnescape(s); err == nil && want != got {
			t.Fatalf("%q: %q, want %q", s, got, want)
		}
		// Quoting what cannot travel and unquoting is the identity.
		if back := rest.Unquote(quoteHeaderValue(s)); back != s {
			t.Fatalf("%q → %q → %q", s, quoteHeaderValue(s), back)
		}
		if len(got) > len(s) {
			t.Fatalf("%q grew to %q", s, got)
		}
	})
}

func TestQuoteHeaderValue(t *testing.T) {
	assert.Equal(t, "read=a,b;write=c", quoteHeaderValue("read=a,b;write=c"))
	assert.Equal(t, "read=%C3%BC,100%25", quoteHeaderValue("read=ü,100%"))
	assert.Equal(t, "a%0Ab", quoteHeaderValue("a\nb"))
	for _, s := range []string{"ü", "x\x00y", "%", "\x7f"} {
		q := quoteHeaderValue(s)
		for i := 0; i < len(q); i++ {
			require.True(t, q[i] >= 0x20 && q[i] < 0x7f, "%q → %q", s, q)
		}
		require.True(t, utf8.ValidString(q))
	}
}

func TestMetaHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("X-Object-Meta-Color", "blue")
	h["X-Object-Meta-%C3%9C%C3%B1"] = []string{"v%C3%A4l%20ue"}
	h.Set("X-Object-Meta-", "ignored: no key")
	h.Set("X-Object-Metadata", "not meta")
	h.Set("X-Container-Meta-Other", "other")
	assert.Equal(t, map[string]string{"color": "blue", "üñ": "väl ue"}, metaHeaders(h, "X-Object-Meta-"))
	assert.Equal(t, map[string]string{"other": "other"}, metaHeaders(h, "X-Container-Meta-"))
}

func TestIntAndTimeHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("A", "42")
	h.Set("B", "x")
	h.Set("Last-Modified", "Tue, 15 Nov 1994 08:12:31 GMT")
	n, err := intHeader(h, "A")
	require.NoError(t, err)
	assert.EqualValues(t, 42, n)
	n, err = intHeader(h, "Missing")
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = intHeader(h, "B")
	assert.ErrorContains(t, err, `bad B header "x"`)
	assert.Equal(t, time.Date(1994, 11, 15, 8, 12, 31, 0, time.UTC), timeHeader(h, "Last-Modified"))
	assert.True(t, timeHeader(h, "B").IsZero())
}

func TestParseListTime(t *testing.T) {
	want := time.Date(2011, 12, 2, 8, 10, 41, 565891000, time.UTC)
	assert.Equal(t, want, parseListTime("2011-12-02T08:10:41.565891+00:00"))
	assert.Equal(t, want, parseListTime("2011-12-02T10:10:41.565891+02:00"))
	assert.Equal(t, want, parseListTime("2011-12-02T08:10:41.565891"))
	assert.Equal(t, want.Truncate(time.Second), parseListTime("2011-12-02T08:10:41"))
	assert.True(t, parseListTime("").IsZero())
	assert.True(t, parseListTime("yesterday").IsZero())
}

func TestFlexInt(t *testing.T) {
	for in, want := range map[string]int64{`5`: 5, `"5"`: 5, `""`: 0, `null`: 0, `" 7 "`: 7, `-3`: -3} {
		var f flexInt
		require.NoError(t, f.UnmarshalJSON([]byte(in)), in)
		assert.EqualValues(t, want, f, in)
	}
	var f flexInt
	assert.Error(t, f.UnmarshalJSON([]byte(`"five"`)))
	assert.Error(t, f.UnmarshalJSON([]byte(`1.5`)))
}

func TestContentRangeTotal(t *testing.T) {
	n, err := contentRangeTotal("bytes 0-9/3000")
	require.NoError(t, err)
	assert.EqualValues(t, 3000, n)
	for _, bad := range []string{"", "bytes 0-9", "items 0-9/10", "bytes 0-9/*"} {
		_, err := contentRangeTotal(bad)
		assert.Error(t, err, bad)
	}
}
