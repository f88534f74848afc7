// Package cloud connects to a Synnefo deployment: it authenticates the token
// with Astakos, finds the Pithos+ and Plankton endpoints in the catalog, and
// hands out clients that share one retrying HTTP stack.
package cloud

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/astakos"
	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/rest"
)

// Options configure a Session.
type Options struct {
	AuthURL string
	Token   string
	// TokenFile, if set, is where Token came from. It is read again when
	// the cloud answers 401, so a token rotated in place is picked up
	// without restarting (see token.go).
	TokenFile string
	// Timeout bounds waiting for response headers of one request.
	Timeout time.Duration
	// DialTimeout bounds connecting (default 10s); syncctl uses a short one.
	DialTimeout time.Duration
	// TLS verifies the cloud's certificates; nil means the system roots.
	// See TLSConfig.
	TLS *tls.Config
	// MaxConns per host; uploads keep many block POSTs in flight.
	MaxConns int
	Retry    rest.RetryPolicy
	Logger   *zap.Logger
}

// FromConfig is the Options of a configuration's cloud section (with
// cloud.token_file already read into Token, see config.ResolveSecrets).
func FromConfig(c config.Cloud) (Options, error) {
	tc, err := TLSConfig(c.CAFile, c.InsecureSkipVerify)
	if err != nil {
		return Options{}, err
	}
	return Options{AuthURL: c.AuthURL, Token: c.Token, TokenFile: c.TokenFile, Timeout: c.Timeout.D(), TLS: tc}, nil
}

// Session is an authenticated connection, created lazily and shared by all
// jobs. After a 401 it re-authenticates on the next Get; with a token file,
// the 401 also makes it read the file again and, if the token changed,
// replay the request once with the new one (token.go).
type Session struct {
	opts  Options
	doer  rest.Doer
	token *tokenSource

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

	token string // the token it was authenticated with
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
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       opts.TLS,
		MaxIdleConns:          opts.MaxConns * 2,
		MaxIdleConnsPerHost:   opts.MaxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.DialTimeout,
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
	src := &tokenSource{current: opts.Token, file: opts.TokenFile}
	s := &Session{opts: opts, token: src}
	s.doer = &tokenDoer{next: rest.NewRetrying(&http.Client{Transport: tr}, policy), src: src, log: log}
	return s
}

// Doer is the shared retrying HTTP stack.
func (s *Session) Doer() rest.Doer { return s.doer }

// Get authenticates on first use and returns the clients.
func (s *Session) Get(ctx context.Context) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	token := s.token.get()
	if s.state != nil && s.state.token == token {
		return s.state, nil
	}
	if s.opts.AuthURL == "" {
		return nil, fmt.Errorf("cloud.auth_url is not set")
	}
	if token == "" {
		return nil, fmt.Errorf("no token: set cloud.token, cloud.token_file or SYNCD_TOKEN")
	}
	ac := astakos.New(s.opts.AuthURL, token, s.doer)
	id, err := ac.Authenticate(ctx)
	if err != nil {
		return nil, explainTLS(err)
	}
	pURL, err := ac.EndpointURL(ctx, "object-store")
	if err != nil {
		return nil, explainTLS(err)
	}
	iURL, err := ac.EndpointURL(ctx, "image")
	if err != nil {
		return nil, explainTLS(err)
	}
	s.state = &State{
		UserUUID: id.UserUUID,
		UserName: id.UserName,
		Astakos:  ac,
		Pithos:   pithos.New(pURL, id.UserUUID, token, s.doer),
		Images:   image.NewClient(iURL, token, s.doer),
		token:    token,
	}
	return s.state, nil
}

// ReloadToken reads the token file again and reports whether the token
// changed (false without a token file). The next Get authenticates with a
// changed token.
func (s *Session) ReloadToken() (bool, error) { return s.token.reload() }

// TokenGeneration changes whenever the token does.
func (s *Session) TokenGeneration() uint64 { return s.token.generation() }

// HasTokenFile reports whether a rotated token can be picked up without a
// restart.
func (s *Session) HasTokenFile() bool { return s.token.file != "" }

// Invalidate drops the cached authentication (after a 401).
func (s *Session) Invalidate() {
	s.mu.Lock()
	s.state = nil
	s.mu.Unlock()
}
