package cloud

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/rest"
)

// A token written to cloud.token_file replaces the one syncd started with,
// without a restart: when the cloud answers 401, the file is read again and,
// if it holds a different token, the request is sent once more with it.
// Every later request carries the new token (tokenDoer rewrites the header
// the clients set), and the next Session.Get authenticates with it, in case
// it belongs to another account.

// tokenSource is the session's current token and where it came from.
type tokenSource struct {
	file string // "" when the token came from the config or the environment

	mu      sync.Mutex
	current string
	gen     uint64 // counts changes of current
}

func (t *tokenSource) generation() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gen
}

func (t *tokenSource) get() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.current
}

// reload reads the file again; it reports whether the token changed.
func (t *tokenSource) reload() (bool, error) {
	if t.file == "" {
		return false, nil
	}
	b, err := os.ReadFile(t.file)
	if err != nil {
		return false, fmt.Errorf("cloud.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return false, fmt.Errorf("cloud.token_file %s is empty", t.file)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tok == t.current {
		return false, nil
	}
	t.current = tok
	t.gen++
	return true, nil
}

// tokenDoer sends every authenticated request with the current token and,
// on a 401, replays it once if the token file holds a new one.
type tokenDoer struct {
	next rest.Doer
	src  *tokenSource
	log  *zap.Logger
}

const authHeader = "X-Auth-Token"

func (d *tokenDoer) Do(req *http.Request) (*http.Response, error) {
	if req.Header.Get(authHeader) == "" {
		return d.next.Do(req) // e.g. a public object
	}
	sent := d.src.get()
	req.Header.Set(authHeader, sent)
	resp, err := d.next.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || d.src.file == "" {
		return resp, err
	}
	changed, rerr := d.src.reload()
	now := d.src.get()
	if rerr != nil {
		d.log.Warn("the cloud rejected the token and the token file cannot be read again", zap.Error(rerr))
		return resp, err
	}
	if !changed && now == sent {
		return resp, err
	}
	// The file holds another token than the one just rejected (read now, or
	// by a concurrent request): send the request again with it, once.
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if changed {
		d.log.Info("the cloud rejected the token; using the new one found in cloud.token_file", zap.String("file", d.src.file))
	}
	if !replayable {
		return resp, err // the caller's retry will carry the new token
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		body, gerr := req.GetBody()
		if gerr != nil {
			return resp, err
		}
		retry.Body = body
	}
	retry.Header.Set(authHeader, now)
	resp.Body.Close()
	return d.next.Do(retry)
}
