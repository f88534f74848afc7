package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Running is a sandbox serving HTTP on a TCP listener: what snf-sandbox
// and `syncd --dev` run.
type Running struct {
	*Server
	// URL is the base URL, e.g. http://127.0.0.1:8080.
	URL  string
	http *http.Server
	done chan struct{}
	err  error // why Serve returned, once done is closed
}

// Listen opens the sandbox described by cfg and serves it on the first of
// addrs that can be listened on (so a busy port can fall back to
// "127.0.0.1:0").
func Listen(cfg Config, addrs ...string) (*Running, error) {
	if len(addrs) == 0 {
		return nil, errors.New("sandbox: no address to listen on")
	}
	var ln net.Listener
	var err error
	for _, a := range addrs {
		if ln, err = net.Listen("tcp", a); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: listen: %w", err)
	}
	srv, err := New(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	rs := &Running{
		Server: srv,
		URL:    "http://" + ln.Addr().String(),
		http:   &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second},
		done:   make(chan struct{}),
	}
	go func() {
		defer close(rs.done)
		if err := rs.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			rs.err = err
		}
	}()
	return rs, nil
}

// AuthURL is the identity endpoint clients start from.
func (rs *Running) AuthURL() string { return rs.URL + "/identity/v2.0" }

// Done is closed when the server stops serving (Close, or a listener
// failure: see Err).
func (rs *Running) Done() <-chan struct{} { return rs.done }

// Err is why serving stopped, after Done is closed; nil after Close.
func (rs *Running) Err() error {
	<-rs.done
	return rs.err
}

// Close stops serving, letting requests in flight finish for a few
// seconds, and closes the storage.
func (rs *Running) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := rs.http.Shutdown(ctx)
	<-rs.done
	return errors.Join(err, rs.err, rs.Server.Close())
}

// StoredToken returns the token kept in the file at path, creating it the
// first time (prefix followed by random characters, mode 0600), so a
// sandbox restarted on the same data keeps its user.
func StoredToken(path, prefix string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("sandbox: token file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("sandbox: token file: %w", err)
	}
	tok := prefix + rand.Text()
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("sandbox: token file: %w", err)
	}
	return tok, nil
}
