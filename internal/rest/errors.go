package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error is a non-success HTTP answer. Fault, Message and Details come from
// Synnefo's JSON fault body {"<fault>": {"code", "message", "details"}} when
// there is one.
type Error struct {
	Method  string
	URL     string
	Status  int
	Fault   string
	Message string
	Details string
	// Body is the raw body (truncated) when it was not a fault document;
	// callers that expect a JSON payload with an error status (the 409 of a
	// hashmap PUT) read it from here.
	Body       []byte
	RetryAfter string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Fault != "" {
		fmt.Fprintf(&b, " (%s", e.Fault)
		if e.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Message)
		}
		b.WriteString(")")
	} else if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Details != "" && len(e.Details) < 300 {
		fmt.Fprintf(&b, " [%s]", e.Details)
	}
	return b.String()
}

// Temporary reports whether retrying the same request may succeed: 5xx
// (but not 501) and 429.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || (e.Status >= 500 && e.Status != http.StatusNotImplemented)
}

// NetError is a failure to get any HTTP answer (refused, reset, timeout).
type NetError struct {
	Method, URL string
	Err         error
}

func (e *NetError) Error() string { return fmt.Sprintf("%s %s: %v", e.Method, e.URL, e.Err) }
func (e *NetError) Unwrap() error { return e.Err }

// Temporary: a network error is always worth retrying.
func (e *NetError) Temporary() bool { return true }

const maxErrorBody = 64 << 10

// ParseError reads resp's body into an *Error. It does not close the body.
func ParseError(method, url string, resp *http.Response) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{Method: method, URL: url, Status: resp.StatusCode, Body: body, RetryAfter: resp.Header.Get("Retry-After")}
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) == nil && len(doc) == 1 {
		for name, raw := range doc {
			var f struct {
				Code    int             `json:"code"`
				Message string          `json:"message"`
				Details json.RawMessage `json:"details"`
			}
			if json.Unmarshal(raw, &f) == nil {
				e.Fault = name
				e.Message = f.Message
				var ds string
				if json.Unmarshal(f.Details, &ds) == nil {
					e.Details = ds
				} else if len(f.Details) > 0 && string(f.Details) != "null" {
					e.Details = string(f.Details)
				}
			}
		}
	}
	if e.Fault == "" && len(body) > 0 && !json.Valid(body) {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
	}
	return e
}

// StatusOf returns the HTTP status carried by err, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsStatus reports whether err carries one of the given HTTP statuses.
func IsStatus(err error, statuses ...int) bool {
	s := StatusOf(err)
	for _, want := range statuses {
		if s == want {
			return true
		}
	}
	return false
}

// IsTemporary reports whether err is worth retrying: a network error, a 5xx or
// a 429. The caller's own cancellation is never temporary.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var ne *NetError
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	return false
}
