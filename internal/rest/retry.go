package rest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy bounds retries of transient failures.
type RetryPolicy struct {
	// Attempts is the total number of tries, including the first.
	Attempts int
	// Base is the first backoff; each retry doubles it up to Max, with full jitter.
	Base, Max time.Duration
	// OnRetry, if set, is told about each retry (for logs and metrics).
	OnRetry func(req *http.Request, attempt int, err error, wait time.Duration)
}

// DefaultRetryPolicy retries a transient failure up to 7 more times (like
// kamaki's 7 rounds), backing off from 200ms to 10s.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{Attempts: 8, Base: 200 * time.Millisecond, Max: 10 * time.Second}
}

// Retrying wraps a Doer so that network errors, 5xx (except 501) and 429 are
// retried with exponential backoff and jitter, honouring Retry-After and the
// request's context. Requests whose body cannot be replayed are sent once.
type Retrying struct {
	Next   Doer
	Policy RetryPolicy
}

// NewRetrying wraps next with policy.
func NewRetrying(next Doer, policy RetryPolicy) *Retrying {
	if next == nil {
		next = http.DefaultClient
	}
	return &Retrying{Next: next, Policy: policy}
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || (code >= 500 && code != http.StatusNotImplemented)
}

// Do implements Doer.
func (r *Retrying) Do(req *http.Request) (*http.Response, error) {
	attempts := r.Policy.Attempts
	if attempts < 1 {
		attempts = 1
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		if attempt > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("rest: rewinding request body: %w", err)
			}
			req.Body = body
		}
		resp, err := r.Next.Do(req)
		last := attempt >= attempts || !replayable || ctx.Err() != nil || certificateError(err)
		if err == nil && !retryableStatus(resp.StatusCode) {
			return resp, nil
		}
		if last {
			return resp, err
		}
		wait := r.backoff(attempt)
		if err == nil {
			if ra := parseRetryAfter(resp.Header.Get("Retry-After")); ra > 0 {
				wait = min(ra, r.Policy.Max)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if r.Policy.OnRetry != nil {
			cause := err
			if cause == nil {
				cause = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			r.Policy.OnRetry(req, attempt, cause, wait)
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// certificateError: the server's certificate was not trusted. Asking again
// gets the same certificate.
func certificateError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return err != nil && (errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci))
}

func (r *Retrying) backoff(attempt int) time.Duration {
	base, maxWait := r.Policy.Base, r.Policy.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if maxWait < base {
		maxWait = base
	}
	d := base << min(attempt-1, 20)
	if d > maxWait || d <= 0 {
		d = maxWait
	}
	// Full jitter: spread retries of many concurrent block uploads apart.
	return d/2 + rand.N(d/2+1)
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
