package pithos

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/rest"
)

// listPageSize is the server's cap on one listing (API_LIST_LIMIT); asking
// for exactly that lets a short page mean "the end".
const listPageSize = 10000

func (c *Client) pageSize() int {
	if c.listPage > 0 && c.listPage < listPageSize {
		return c.listPage
	}
	return listPageSize
}

// headerValue is a response header with the server's URL-quoting undone.
// Pithos quotes every X-Account-/X-Container-/X-Object-/Content- value.
func headerValue(h http.Header, key string) string {
	return rest.Unquote(h.Get(key))
}

// intHeader parses an integer header; a missing one is 0.
func intHeader(h http.Header, key string) (int64, error) {
	v := strings.TrimSpace(h.Get(key))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad %s header %q", key, v)
	}
	return n, nil
}

// timeHeader parses an HTTP date; a missing or malformed one is the zero time.
func timeHeader(h http.Header, key string) time.Time {
	t, err := http.ParseTime(h.Get(key))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// metaHeaders collects the headers under prefix (e.g. "X-Object-Meta-") into
// a map keyed by the lowercased, unquoted remainder. The server title-cases
// stored keys (and turns '_' into '-'), so lowercase is the only stable form.
func metaHeaders(h http.Header, prefix string) map[string]string {
	out := map[string]string{}
	lp := strings.ToLower(prefix)
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, lp) || len(lk) == len(lp) || len(vs) == 0 {
			continue
		}
		out[strings.ToLower(rest.Unquote(k[len(lp):]))] = rest.Unquote(strings.Join(vs, ","))
	}
	return out
}

// setMetaHeaders adds prefix+key for each entry. Keys and values are quoted
// the way kamaki does, and the server unquotes both, so non-ASCII survives.
func setMetaHeaders(h http.Header, prefix string, meta map[string]string) {
	for k, v := range meta {
		h.Set(prefix+rest.QueryEscape(k), rest.QueryEscape(v))
	}
}

// parseListTime parses a listing's last_modified (ISO-8601 with
// microseconds and an offset); anything unparsable is the zero time.
func parseListTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// flexInt decodes an integer sent either as a JSON number or as a string
// (the container listing's policy quota is a string); null and "" are 0.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*f = 0
		return nil
	}
	if uq, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(uq)
	}
	if s == "" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*f = flexInt(n)
	return nil
}

// quoteHeaderValue percent-encodes what cannot travel in a header value as
// is (non-ASCII, controls) and '%' itself. The server unquotes every request
// header value that contains '%', so the rest stays readable on the wire.
func quoteHeaderValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
