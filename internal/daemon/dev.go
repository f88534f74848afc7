package daemon

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

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// DevListen is where --dev serves its sandbox cloud.
const DevListen = "127.0.0.1:8780"

// devTokenFile (under state_dir) keeps the dev user's token across restarts.
const devTokenFile = "dev-token"

// devUserUUID is stable so the sandbox's persisted objects stay the dev user's.
const devUserUUID = "de000000-0000-4000-8000-00000000dev1"

// DevCloud is the in-process sandbox that --dev runs.
type DevCloud struct {
	Server  *sandbox.Server
	HTTP    *http.Server
	URL     string
	User    sandbox.User
	stopped chan struct{}
}

// StartDevCloud runs a sandbox on loopback with its data and the dev token
// under stateDir, so restarts of `syncd --dev` keep the images.
func StartDevCloud(stateDir, listen string) (*DevCloud, error) {
	if err := os.MkdirAll(filepath.Join(stateDir, "sandbox"), 0o700); err != nil {
		return nil, fmt.Errorf("dev: state dir: %w", err)
	}
	token, err := devToken(filepath.Join(stateDir, devTokenFile))
	if err != nil {
		return nil, err
	}
	user := sandbox.User{Name: "dev", UUID: devUserUUID, Token: token}
	srv, err := sandbox.New(sandbox.Config{DataDir: filepath.Join(stateDir, "sandbox"), Users: []sandbox.User{user}})
	if err != nil {
		return nil, fmt.Errorf("dev: sandbox: %w", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		// A second dev daemon, or another program on the port: use any free one.
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			srv.Close()
			return nil, fmt.Errorf("dev: sandbox listen: %w", err)
		}
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	dc := &DevCloud{Server: srv, HTTP: hs, URL: "http://" + ln.Addr().String(), User: user, stopped: make(chan struct{})}
	go func() {
		defer close(dc.stopped)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "dev sandbox: %v\n", err)
		}
	}()
	return dc, nil
}

// Close stops the sandbox.
func (d *DevCloud) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.HTTP.Shutdown(ctx)
	<-d.stopped
	return errors.Join(err, d.Server.Close())
}

// AuthURL is the identity endpoint.
func (d *DevCloud) AuthURL() string { return d.URL + "/identity/v2.0" }

func devToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	tok := "dev-" + rand.Text()
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dev: token file: %w", err)
	}
	return tok, nil
}

// DevConfig is the configuration `syncd --dev` runs with: the embedded Redis,
// the dev sandbox, and a watch on ./images.
func DevConfig(base *config.Config, dc *DevCloud) *config.Config {
	cfg := *base
	cfg.Cloud.AuthURL = dc.AuthURL()
	cfg.Cloud.Token = dc.User.Token
	cfg.Cloud.TokenFile = ""
	cfg.Redis.Addr = config.EmbeddedRedis
	if cfg.Settle.D() == 5*time.Second {
		cfg.Settle = config.Duration(2 * time.Second)
	}
	if len(cfg.Watch) == 0 {
		cfg.Watch = []config.Watch{{Dir: "./images", Container: "images", Defaults: map[string]any{"properties": map[string]any{"OSFAMILY": "linux"}}}}
	}
	cfg.Log.Format = "console"
	return &cfg
}
