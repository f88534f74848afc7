package rest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestURLEscaping(t *testing.T) {
	c := New("http://h/object-store/v1/", "tok", nil)
	tests := []struct {
		req  Request
		want string
	}{
		{Request{Path: "/acct/cont/dir/my img#?%ü.diskdump"}, "http://h/object-store/v1/acct/cont/dir/my%20img%23%3F%25%C3%BC.diskdump"},
		{Request{Path: "/acct/cont", Query: []Param{{"update", ""}, {"format", "json"}}}, "http://h/object-store/v1/acct/cont?update&format=json"},
		{Request{Path: "/a/c/o", Query: []Param{{"hashmap", "True"}, {"format", "json"}}}, "http://h/object-store/v1/a/c/o?hashmap=True&format=json"},
		{Request{Path: "/images/", Query: []Param{{"name", "x y&z"}}}, "http://h/object-store/v1/images/?name=x%20y%26z"},
		{Request{RawPath: "/already%20escaped"}, "http://h/object-store/v1/already%20escaped"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, c.URL(&tt.req))
	}
}

func TestDoParsesFaults(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "tok", r.Header.Get("X-Auth-Token"))
		switch r.URL.Path {
		case "/missing":
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"itemNotFound": {"code": 404, "message": "Object does not exist", "details": ""}}`)
		case "/conflict":
			w.WriteHeader(409)
			_, _ = io.WriteString(w, `["abc", "def"]`)
		case "/put":
			assert.Equal(t, "0", r.Header.Get("Content-Length"))
			w.WriteHeader(201)
		}
	}))
	defer srv.Close()
	c := New(srv.URL, "tok", srv.Client())
	ctx := context.Background()

	_, err := c.Do(ctx, &Request{Method: "HEAD", Path: "/missing", Success: []int{200}})
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 404, e.Status)
	_, err = c.Do(ctx, &Request{Method: "GET", Path: "/missing", Success: []int{200}})
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "itemNotFound", e.Fault)
	assert.Equal(t, "Object does not exist", e.Message)
	assert.True(t, IsStatus(err, 404))
	assert.False(t, IsTemporary(err))
	assert.NotContains(t, err.Error(), "tok")

	_, err = c.Do(ctx, &Request{Method: "PUT", Path: "/conflict", Success: []int{201}})
	require.ErrorAs(t, err, &e)
	assert.JSONEq(t, `["abc","def"]`, string(e.Body))

	_, err = c.DoDiscard(ctx, &Request{Method: "PUT", Path: "/put", Success: []int{201}})
	require.NoError(t, err)
}

func TestRetryingTransient(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		assert.Equal(t, "payload", string(body), "body replayed on retry")
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/flaky" && n < 3:
			w.WriteHeader(503)
		case r.URL.Path == "/busy" && n == 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
		case r.URL.Path == "/forbidden":
			w.WriteHeader(403)
		case r.URL.Path == "/down":
			w.WriteHeader(500)
		default:
			w.WriteHeader(202)
		}
	}))
	defer srv.Close()
	var retries atomic.Int32
	policy := RetryPolicy{Attempts: 4, Base: time.Millisecond, Max: 5 * time.Millisecond,
		OnRetry: func(*http.Request, int, error, time.Duration) { retries.Add(1) }}
	c := New(srv.URL, "", NewRetrying(srv.Client(), policy))
	do := func(path string) error {
		calls.Store(0)
		_, err := c.DoDiscard(context.Background(), &Request{Method: "POST", Path: path, Body: bytes.NewReader([]byte("payload")), ContentLength: 7, Success: []int{202}})
		return err
	}
	tests := []struct {
		path      string
		wantErr   bool
		wantCalls int32
	}{
		{"/flaky", false, 3},
		{"/busy", false, 2},
		{"/forbidden", true, 1},
		{"/down", true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := do(tt.path)
			if tt.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.wantCalls, calls.Load())
		})
	}
	assert.Equal(t, int32(2+1+3), retries.Load())
}

func TestRetryingHonoursContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer srv.Close()
	c := New(srv.URL, "", NewRetrying(srv.Client(), RetryPolicy{Attempts: 100, Base: time.Second, Max: time.Second}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, &Request{Method: "GET", Path: "/", Success: []int{200}})
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)
	assert.False(t, IsTemporary(err))
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestNetErrorIsTemporary(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := New(url, "", nil)
	_, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/"})
	var ne *NetError
	require.ErrorAs(t, err, &ne)
	assert.True(t, IsTemporary(err))
}

func TestUnquote(t *testing.T) {
	cases := map[string]string{
		"plain":           "plain",
		"a%20b":           "a b",
		"%C3%BC":          "ü",
		"%c3%bc":          "ü",
		"100%":            "100%",
		"%zz":             "%zz",
		"%2":              "%2",
		"a+b":             "a+b",
		"%2541":           "%41",
		"x%":              "x%",
		"%41%42":          "AB",
		"caf%C3%A9%20%3B": "café ;",
	}
	for in, want := range cases {
		assert.Equal(t, want, Unquote(in), in)
	}
}

func FuzzUnquote(f *testing.F) {
	for _, s := range []string{"", "a%20b", "%", "%%41", "%C3%BC", "ü", "%4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Unquote(s)
		// Where Go's strict decoder succeeds, the lenient one agrees.
		if want, err := url.PathUnescape(s); err == nil && want != got {
			t.Fatalf("%q: %q, want %q", s, got, want)
		}
		// What QueryEscape quotes, Unquote restores.
		if back := Unquote(QueryEscape(s)); back != s {
			t.Fatalf("%q → %q → %q", s, QueryEscape(s), back)
		}
	})
}
