package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/redistest"
)

type backend struct {
	name string
	addr string
	db   int
	mr   *miniredis.Miniredis
}

// backends are miniredis and a real redis-server of the test's own.
func backends() []string { return []string{"miniredis", "redis"} }

func forEachBackend(t *testing.T, f func(t *testing.T, e *env)) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) { f(t, newEnv(t, name)) })
	}
}

// env is a Redis (with asynq on it), a watch root and a config file.
type env struct {
	t       *testing.T
	be      backend
	rdb     *redis.Client
	client  *asynq.Client
	insp    *asynq.Inspector
	dir     string
	root    string
	cfgPath string
	token   string
	authURL string
	extra   string // more YAML appended to the config
}

func newEnv(t *testing.T, name string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), token: "tok-" + strings.Repeat("x", 12), authURL: "http://127.0.0.1:1/identity/v2.0"}
	switch name {
	case "miniredis":
		mr := miniredis.RunT(t)
		e.be = backend{name: name, addr: mr.Addr(), mr: mr}
	case "redis":
		s := redistest.Start(t)
		e.be = backend{name: name, addr: s.Addr, db: s.DB}
	}
	e.rdb = redis.NewClient(&redis.Options{Addr: e.be.addr, DB: e.be.db})
	require.NoError(t, e.rdb.FlushDB(context.Background()).Err())
	t.Cleanup(func() {
		_ = e.rdb.FlushDB(context.Background()).Err()
		_ = e.rdb.Close()
	})
	e.client = asynq.NewClientFromRedisClient(e.rdb)
	e.insp = asynq.NewInspectorFromRedisClient(e.rdb)
	e.root = filepath.Join(e.dir, "images")
	require.NoError(t, os.MkdirAll(e.root, 0o755))
	e.writeConfig()
	return e
}

func (e *env) writeConfig() {
	e.t.Helper()
	e.cfgPath = filepath.Join(e.dir, "syncd.yaml")
	cfg := fmt.Sprintf(`node: n1
cloud:
  auth_url: %q
  token: %q
redis:
  addr: %q
  embedded_listen: "127.0.0.1:1"
  db: %d
state_dir: %q
watch:
  - dir: %q
    container: images
%s`, e.authURL, e.token, e.be.addr, e.be.db, filepath.Join(e.dir, "state"), e.root, e.extra)
	require.NoError(e.t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
}

// run executes syncctl with args against this env's config.
func (e *env) run(args ...string) (int, string, string) {
	e.t.Helper()
	return runCtl(e.t, append([]string{"--config", e.cfgPath}, args...)...)
}

// runJSON executes a --json command, requires exit 0 and decodes stdout.
func (e *env) runJSON(v any, args ...string) {
	e.t.Helper()
	code, out, errOut := e.run(append(args, "--json")...)
	require.Equal(e.t, 0, code, "stderr: %s\nstdout: %s", errOut, out)
	require.NoError(e.t, json.Unmarshal([]byte(out), v), "stdout: %s", out)
}

func runCtl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := Main(ctx, args, Options{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	return code, out.String(), errOut.String()
}

// keys returns the sorted keys of a JSON object.
func keys(t *testing.T, v any) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "not a JSON object: %#v", v)
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
