package daemon

import (
	"fmt"
	"os"
	"path/filepath"
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
	*sandbox.Running
	User sandbox.User
}

// StartDevCloud runs a sandbox on loopback with its data and the dev token
// under stateDir, so restarts of `syncd --dev` keep the images. A second dev
// daemon, or another program on listen, gets any free port instead.
func StartDevCloud(stateDir, listen string) (*DevCloud, error) {
	data := filepath.Join(stateDir, "sandbox")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("dev: state dir: %w", err)
	}
	token, err := sandbox.StoredToken(filepath.Join(stateDir, devTokenFile), "dev-")
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	user := sandbox.User{Name: "dev", UUID: devUserUUID, Token: token}
	rs, err := sandbox.Listen(sandbox.Config{DataDir: data, Users: []sandbox.User{user}}, listen, "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	return &DevCloud{Running: rs, User: user}, nil
}

// DevConfig is the configuration `syncd --dev` runs with: the embedded Redis,
// the dev sandbox, and a watch on ./images.
func DevConfig(base *config.Config, dc *DevCloud) *config.Config {
	cfg := *base
	cfg.Cloud.AuthURL = dc.AuthURL()
	cfg.Cloud.Token = dc.User.Token
	cfg.Cloud.TokenFile = ""
	cfg.Cloud.CAFile, cfg.Cloud.InsecureSkipVerify = "", false // the dev sandbox is plain http on loopback
	cfg.Redis.Addr = config.EmbeddedRedis
	cfg.Redis.Sentinel, cfg.Redis.Cluster = config.RedisSentinel{}, config.RedisCluster{}
	if cfg.Settle.D() == 5*time.Second {
		cfg.Settle = config.Duration(2 * time.Second)
	}
	if len(cfg.Watch) == 0 {
		cfg.Watch = []config.Watch{{Dir: "./images", Container: "images", Defaults: map[string]any{"properties": map[string]any{"OSFAMILY": "linux"}}}}
	}
	cfg.Log.Format = "console"
	return &cfg
}
