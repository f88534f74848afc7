package ctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/rest"
)

// syncctl is interactive: with nothing listening it should say so at once,
// with what to check, rather than retry for seconds like the daemon does.

// dialTimeout bounds connecting to Redis and to the cloud.
const dialTimeout = time.Second

// cloudOptions are the cloud session options of syncctl: the daemon's,
// with a short connect timeout and few, short retries.
func cloudOptions(c config.Cloud) (cloud.Options, error) {
	o, err := cloud.FromConfig(c)
	if err != nil {
		return o, err
	}
	o.DialTimeout = dialTimeout
	o.Retry = rest.RetryPolicy{Attempts: 3, Base: 100 * time.Millisecond, Max: time.Second}
	return o, nil
}

// unreachable is a Redis syncctl could not connect to.
type unreachable struct {
	what, addr string
	err        error
}

func (u *unreachable) Error() string {
	return fmt.Sprintf("cannot reach %s at %s: %v", u.what, u.addr, u.err)
}
func (u *unreachable) Unwrap() error { return u.err }

// probeRedis connects once, without go-redis's retries, so that a refused
// port fails in milliseconds and an unroutable one within dialTimeout. With
// sentinels or cluster nodes, one answering is enough: go-redis finds the
// rest.
func probeRedis(ctx context.Context, rc config.Redis) error {
	var addrs []string
	what := "Redis"
	switch rc.Mode() {
	case config.RedisModeEmbedded:
		addrs, what = []string{rc.EmbeddedListen}, "syncd's embedded Redis"
	case config.RedisModeSingle:
		addrs = []string{rc.Addr}
	case config.RedisModeSentinel:
		addrs, what = rc.Sentinel.Addrs, "the Redis sentinels"
	case config.RedisModeCluster:
		addrs, what = rc.Cluster.Addrs, "the Redis Cluster"
	}
	var first error
	for _, addr := range addrs {
		if addr == "" {
			continue
		}
		d := net.Dialer{Timeout: dialTimeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err // "connection refused", not the whole dial line
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return nil
	}
	return &unreachable{what: what, addr: strings.Join(addrs, ", "), err: first}
}

// devConfigPath is where a `syncd --dev` run in this directory leaves its
// configuration for syncctl.
func devConfigPath() string {
	return filepath.Join(config.Default().StateDir, config.DevConfigFile)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// hints says, after a failure, what to check and which configuration was
// read.
func (a *app) hints(err error) []string {
	cfg := a.cfg
	if cfg == nil {
		return nil
	}
	var out []string
	devLike := cfg.Source == "" || filepath.Base(cfg.Source) == config.DevConfigFile
	var u *unreachable
	var op *net.OpError
	switch {
	case errors.As(err, &u) && cfg.Redis.Mode() == config.RedisModeEmbedded && devLike:
		out = append(out, "is `syncd --dev` running here? (syncctl finds it through "+devConfigPath()+", which syncd --dev writes in the directory it runs in)")
	case errors.As(err, &u) && cfg.Redis.Mode() == config.RedisModeEmbedded:
		out = append(out, "is syncd running on this host? (redis.addr is \"embedded\": syncctl reaches it at redis.embedded_listen)")
	case errors.As(err, &u) && cfg.Redis.Mode() == config.RedisModeSingle:
		out = append(out, "is that Redis running, and are redis.addr and its password right?")
	case errors.As(err, &u):
		out = append(out, "are they running, and are the addresses in the redis section right?")
	case errors.As(err, &op) && op.Op == "dial" && devLike:
		out = append(out, "is `syncd --dev` running here? (its sandbox cloud serves cloud.auth_url "+cfg.Cloud.AuthURL+")")
	case errors.As(err, &op) && op.Op == "dial":
		out = append(out, "is cloud.auth_url ("+cfg.Cloud.AuthURL+") right, and is the cloud reachable from this host?")
	}
	if cfg.Source != "" {
		out = append(out, "configuration: "+cfg.Source)
	} else {
		out = append(out, fmt.Sprintf("no configuration file (looked for %s and %s): built-in defaults and SYNCD_* variables; pass --config FILE", config.DefaultPath, devConfigPath()))
	}
	return out
}
