package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const specExample = `
node: build-host-1
cloud:
  auth_url: https://accounts.example.org/identity/v2.0
  token: ""
redis:
  addr: embedded
  embedded_listen: 127.0.0.1:6390
state_dir: ./state
settle: 5s
rescan: 1m
http:
  listen: 127.0.0.1:9464
upload:
  files: 2
  blocks: 8
watch:
  - dir: ./images
    container: images
    prefix: ""
    public: false
    upload_metafile: true
    defaults: { properties: { OSFAMILY: linux } }
schedule:
  republish: "0 3 * * *"
`

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadSpecExample(t *testing.T) {
	p := filepath.Join(t.TempDir(), "syncd.yaml")
	require.NoError(t, os.WriteFile(p, []byte(specExample), 0o600))
	cfg, err := Load(p, false, env(nil))
	require.NoError(t, err)
	assert.Equal(t, "build-host-1", cfg.Node)
	assert.Equal(t, 5*time.Second, cfg.Settle.D())
	assert.Equal(t, time.Minute, cfg.Rescan.D())
	require.Len(t, cfg.Watch, 1)
	assert.True(t, cfg.Watch[0].UploadsMetafile())
	assert.Equal(t, map[string]any{"properties": map[string]any{"OSFAMILY": "linux"}}, cfg.Watch[0].Defaults)
	assert.Equal(t, []string{"*.diskdump"}, cfg.Watch[0].ImagePatterns())
	assert.Equal(t, "0 3 * * *", cfg.Schedule.Republish)
	assert.Empty(t, cfg.Warnings)
}

func TestEnvOverrides(t *testing.T) {
	p := filepath.Join(t.TempDir(), "syncd.yaml")
	require.NoError(t, os.WriteFile(p, []byte("cloud: {token: fromfile}\n"), 0o600))
	cfg, err := Load(p, false, env(map[string]string{"SYNCD_TOKEN": "fromenv", "SYNCD_REDIS_ADDR": "10.0.0.1:6379"}))
	require.NoError(t, err)
	assert.Equal(t, "fromenv", cfg.Cloud.Token)
	assert.Equal(t, "10.0.0.1:6379", cfg.Redis.Addr)
}

func TestWorldReadableTokenWarns(t *testing.T) {
	p := filepath.Join(t.TempDir(), "syncd.yaml")
	require.NoError(t, os.WriteFile(p, []byte("cloud: {token: secret}\n"), 0o644))
	require.NoError(t, os.Chmod(p, 0o644))
	cfg, err := Load(p, false, env(nil))
	require.NoError(t, err)
	require.Len(t, cfg.Warnings, 1)
	assert.Contains(t, cfg.Warnings[0], "world-readable")
	assert.NotContains(t, cfg.Warnings[0], "secret")
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tf, []byte("tok\n"), 0o600))
	cfg := Default()
	cfg.Cloud.TokenFile = tf
	require.NoError(t, cfg.ResolveSecrets())
	assert.Equal(t, "tok", cfg.Cloud.Token)
	cfg = Default()
	cfg.Cloud.TokenFile = filepath.Join(dir, "missing")
	assert.ErrorContains(t, cfg.ResolveSecrets(), "cloud.token_file")
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "nodes: x\n", "field nodes not found"},
		{"bad duration", "settle: fast\n", `"fast" is not a duration`},
		{"missing container", "watch: [{dir: ./a}]\n", "watch[0].container"},
		{"missing dir", "watch: [{container: c}]\n", "watch[0].dir: required"},
		{"dup dir", "watch: [{dir: ./a, container: c}, {dir: a, container: d}]\n", "watched twice"},
		{"bad files", "upload: {files: 0}\n", "upload.files 0"},
		{"bad prefix", "watch: [{dir: a, container: c, prefix: ../x}]\n", "watch[0].prefix"},
		{"bad pattern", "watch: [{dir: a, container: c, patterns: ['[']}]\n", "watch[0].patterns"},
		{"bad log format", "log: {format: xml}\n", "log.format"},
		{"tiny rescan", "rescan: 10ms\n", "rescan 10ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tt.yaml), 0o600))
			_, err := Load(p, false, env(nil))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), false, env(nil))
	assert.ErrorContains(t, err, "pass --config")
	cfg, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), true, env(nil))
	require.NoError(t, err)
	assert.Equal(t, EmbeddedRedis, cfg.Redis.Addr)
}

func TestWriteDevRoundTrips(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "dev-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("dev-secret\n"), 0o600))
	cfg := Default()
	cfg.Node = "n1"
	cfg.Cloud.AuthURL = "http://127.0.0.1:8780/identity/v2.0"
	cfg.Cloud.Token = "dev-secret"
	off := false
	cfg.Watch = []Watch{{Dir: "./images", Container: "images", Public: true, UploadMetafile: &off,
		Defaults: map[string]any{"properties": map[string]any{"OSFAMILY": "linux"}}}}
	path := filepath.Join(dir, DevConfigFile)
	require.NoError(t, cfg.WriteDev(path, tokenFile))

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "dev-secret", "the token stays in its own file")
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	got, err := Load(path, false, func(string) string { return "" })
	require.NoError(t, err)
	require.NoError(t, got.ResolveSecrets())
	assert.Equal(t, "dev-secret", got.Cloud.Token)
	assert.Equal(t, cfg.Cloud.AuthURL, got.Cloud.AuthURL)
	assert.Equal(t, cfg.Redis, got.Redis)
	assert.Equal(t, "n1", got.Node)
	require.Len(t, got.Watch, 1)
	assert.Equal(t, cfg.Watch[0].Dir, got.Watch[0].Dir)
	assert.True(t, got.Watch[0].Public)
	assert.False(t, got.Watch[0].UploadsMetafile())
	assert.Equal(t, cfg.Watch[0].Defaults, got.Watch[0].Defaults)
}
