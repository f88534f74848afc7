package pithos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/rest"
)

// Version is one entry of an object's history.
type Version struct {
	// Serial is what InfoOptions.Version and GetOptions.Version take.
	Serial    int64
	Timestamp time.Time
}

// Versions lists an object's versions, oldest first (GET ?version=list).
// With versioning "none" only the current one is kept. It works even after
// the object was deleted.
func (c *Client) Versions(ctx context.Context, container, object string) ([]Version, error) {
	resp, err := c.rest.Do(ctx, &rest.Request{
		Method:  http.MethodGet,
		Path:    c.objectPath(container, object),
		Query:   []rest.Param{{Key: "version", Value: "list"}, {Key: "format", Value: "json"}},
		Success: []int{http.StatusOK},
	})
	if err != nil {
		return nil, err
	}
	var doc struct {
		Versions [][2]json.RawMessage `json:"versions"`
	}
	if err := decodeListing(resp, &doc); err != nil {
		return nil, fmt.Errorf("pithos: versions of %s/%s: %w", container, object, err)
	}
	out := make([]Version, 0, len(doc.Versions))
	for _, pair := range doc.Versions {
		var serial flexInt
		if err := serial.UnmarshalJSON(pair[0]); err != nil {
			return nil, fmt.Errorf("pithos: versions of %s/%s: serial: %w", container, object, err)
		}
		var ts flexTS
		if err := ts.UnmarshalJSON(pair[1]); err != nil {
			return nil, fmt.Errorf("pithos: versions of %s/%s: %w", container, object, err)
		}
		out = append(out, Version{Serial: int64(serial), Timestamp: time.Time(ts)})
	}
	return out, nil
}

// flexTS decodes a Unix timestamp with a fraction, which the server sends
// as a Decimal serialised to a string ("1322813441.565891"), or as a number.
type flexTS time.Time

func (f *flexTS) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*f = flexTS{}
		return nil
	}
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	t, err := parseUnixTimestamp(s)
	if err != nil {
		return err
	}
	*f = flexTS(t)
	return nil
}

// parseUnixTimestamp parses "SECONDS[.FRACTION]" exactly (no float
// rounding): the fraction is kept to the nanosecond.
func parseUnixTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	secPart, frac, _ := strings.Cut(s, ".")
	if secPart == "" || secPart == "-" || secPart == "+" {
		return time.Time{}, fmt.Errorf("bad timestamp %q", s)
	}
	sec, err := strconv.ParseInt(secPart, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("bad timestamp %q", s)
	}
	var nsec int64
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return time.Time{}, fmt.Errorf("bad timestamp %q", s)
		}
		if i < 9 {
			nsec = nsec*10 + int64(c-'0')
		}
	}
	for i := len(frac); i < 9; i++ {
		nsec *= 10
	}
	return time.Unix(sec, nsec).UTC(), nil
}
