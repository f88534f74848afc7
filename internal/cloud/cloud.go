// Package cloud connects to a Synnefo deployment: it authenticates the token
// with Astakos, finds the Pithos+ and Plankton endpoints in the catalog, and
// hands out clients that share one retrying HTTP stack.
package cloud

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/astakos"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/rest"
)

// Options configure a Session.
type Options struct {
	AuthURL string
	Token   string
	// Timeout bounds waiting for response headers of one request.
	Timeout time.Duration
	// MaxConns per host; uploads keep many block POSTs in flight.
	MaxConns int
	Retry    rest.RetryPolicy
	Logger   *zap.Logger
}

// Session is an authenticated connection, created lazily and shared by all
// jobs. After a 401 it re-authenticates on the next Get, so a token fixed in
// place (token_file rewritten) is picked up without restarting.
type Session struct {
	opts Options
	doer rest.Doer

	mu    sync.Mutex
	state *State
}

// State is what one successful authentication yields.
type State struct {
	UserUUID string
	UserName string
	Astakos  *astakos.Client
	Pithos   *pithos.Client
	Images   *image.Client
}

// New prepares a session; nothing is sent until Get.
func New(opts Options) *Session {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 32
	}
	if opts.Retry.Attempts == 0 {
		opts.Retry = rest.DefaultRetryPolicy()
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          opts.MaxConns * 2,
		MaxIdleConnsPerHost:   opts.MaxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: opts.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	policy := opts.Retry
	if policy.OnRetry == nil {
		policy.OnRetry = func(req *http.Request, attempt int, err error, wait time.Duration) {
			// Never log the URL's query (a token could be there) or headers.
			log.Warn("retrying request", zap.String("method", req.Method), zap.String("path", req.URL.Path),
				zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		}
	}
	return &Session{opts: opts, doer: rest.NewRetrying(&http.Client{Transport: tr}, policy)}
}

// Doer is the shared retrying HTTP stack.
func (s *Session) Doer() rest.Doer { return s.doer }

// Get authenticates on first use and returns the clients.
func (s *Session) Get(ctx context.Context) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != nil {
		return s.state, nil
	}
	if s.opts.AuthURL == "" {
		return nil, fmt.Errorf("cloud.auth_url is not set")
	}
	if s.opts.Token == "" {
		return nil, fmt.Errorf("no token: set cloud.token, cloud.token_file or SYNCD_TOKEN")
	}
	ac := astakos.New(s.opts.AuthURL, s.opts.Token, s.doer)
	id, err := ac.Authenticate(ctx)
	if err != nil {
		return nil, err
	}
	pURL, err := ac.EndpointURL(ctx, "object-store")
	if err != nil {
		return nil, err
	}
	iURL, err := ac.EndpointURL(ctx, "image")
	if err != nil {
		return nil, err
	}
	s.state = &State{
		UserUUID: id.UserUUID,
		UserName: id.UserName,
		Astakos:  ac,
		Pithos:   pithos.New(pURL, id.UserUUID, s.opts.Token, s.doer),
		Images:   image.NewClient(iURL, s.opts.Token, s.doer),
	}
	return s.state, nil
}

// Invalidate drops the cached authentication (after a 401).
func (s *Session) Invalidate() {
	s.mu.Lock()
	s.state = nil
	s.mu.Unlock()
}
