// Package rest is the HTTP plumbing shared by the Synnefo clients (astakos,
// pithos, image): request building with kamaki-compatible escaping, the
// X-Auth-Token header, status checks and typed errors parsed from Synnefo's
// fault bodies. Retrying lives in a wrapper (retry.go), not in callers.
package rest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/imagesync/imagesync/internal/location"
)

// Doer sends one HTTP request. *http.Client satisfies it; Retrying wraps one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Param is one query parameter. An empty Value is sent as a bare key
// ("?update"), exactly as kamaki does.
type Param struct {
	Key, Value string
}

// Request describes one call relative to a Client's base URL.
type Request struct {
	Method string
	// Path is unescaped and '/'-separated; each segment is percent-encoded.
	// Use RawPath when the caller has already escaped it.
	Path    string
	RawPath string
	Query   []Param
	Header  http.Header
	// Body, when set, must be re-readable for retries: give a GetBody too, or
	// use one of *bytes.Reader, *bytes.Buffer, *strings.Reader.
	Body          io.Reader
	GetBody       func() (io.ReadCloser, error)
	ContentLength int64
	// Success lists the accepted statuses; any other one becomes an *Error.
	Success []int
}

// Client is a base URL plus a token and a Doer.
type Client struct {
	BaseURL   string
	Token     string
	HTTP      Doer
	UserAgent string
}

// New returns a client for baseURL (a trailing '/' is dropped).
func New(baseURL, token string, doer Doer) *Client {
	if doer == nil {
		doer = http.DefaultClient
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: doer, UserAgent: "imagesync"}
}

// URL renders the full URL of r, without any credentials.
func (c *Client) URL(r *Request) string {
	p := r.RawPath
	if p == "" && r.Path != "" {
		p = location.EscapePath(r.Path)
	}
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	u := c.BaseURL + p
	if len(r.Query) > 0 {
		var q []string
		for _, kv := range r.Query {
			if kv.Value == "" {
				q = append(q, QueryEscape(kv.Key))
			} else {
				q = append(q, QueryEscape(kv.Key)+"="+QueryEscape(kv.Value))
			}
		}
		u += "?" + strings.Join(q, "&")
	}
	return u
}

// QueryEscape escapes a query key or value like Python's urllib.quote.
func QueryEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.-~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// Unquote is Python 2's urllib.unquote, the inverse of the quoting Synnefo
// applies to header values (Pithos X-Account-/X-Container-/X-Object-/
// Content- values, Plankton's image names and properties): valid %XX
// escapes are decoded, and anything else, a malformed escape or '+', is
// kept as it is (never an error).
func Unquote(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// NewHTTPRequest builds the *http.Request for r.
func (c *Client) NewHTTPRequest(ctx context.Context, r *Request) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, c.URL(r), r.Body)
	if err != nil {
		return nil, fmt.Errorf("rest: building %s request: %w", r.Method, err)
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if c.Token != "" {
		req.Header.Set("X-Auth-Token", c.Token)
	}
	if c.UserAgent != "" && req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if r.GetBody != nil {
		req.GetBody = r.GetBody
	}
	if r.ContentLength > 0 || (r.Body == nil && (r.Method == http.MethodPut || r.Method == http.MethodPost)) {
		req.ContentLength = r.ContentLength
	}
	if req.ContentLength == 0 && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
		// Synnefo answers 411 to a PUT/POST without Content-Length; make Go
		// send "Content-Length: 0" instead of omitting it.
		if r.Body == nil {
			req.Body = http.NoBody
			req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		}
	}
	return req, nil
}

// Do sends r and checks its status. On success the caller owns resp.Body. On
// an unexpected status the body is read, closed and returned as an *Error.
func (c *Client) Do(ctx context.Context, r *Request) (*http.Response, error) {
	req, err := c.NewHTTPRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Method, req.URL.Redacted(), ctxErr)
		}
		return nil, &NetError{Method: r.Method, URL: req.URL.Redacted(), Err: err}
	}
	if len(r.Success) == 0 || containsInt(r.Success, resp.StatusCode) {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, ParseError(r.Method, req.URL.Redacted(), resp)
}

// DoDiscard is Do for calls whose body is not needed: it returns the headers.
func (c *Client) DoDiscard(ctx context.Context, r *Request) (*http.Response, error) {
	resp, err := c.Do(ctx, r)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
