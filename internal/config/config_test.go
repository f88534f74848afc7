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
