package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedisModeAndValidation(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		mode    RedisMode
		wantErr []string // substrings of the validation error; none means valid
	}{
		{name: "default is embedded", yaml: "", mode: RedisModeEmbedded},
		{name: "single server", yaml: "redis: {addr: 10.0.0.1:6379}", mode: RedisModeSingle},
		{name: "single server needs a port", yaml: "redis: {addr: redis.example.org}", mode: RedisModeSingle,
			wantErr: []string{`redis.addr: "redis.example.org" is not host:port`}},
		{name: "sentinel replaces the embedded default", mode: RedisModeSentinel, yaml: `
redis:
  sentinel:
    master: imagesync
    addrs: [s1:26379, s2:26379, s3:26379]
`},
		{name: "explicit embedded with sentinel is sentinel", mode: RedisModeSentinel,
			yaml: "redis: {addr: embedded, sentinel: {master: m, addrs: ['s1:26379']}}"},
		{name: "sentinel and addr exclude each other", mode: RedisModeSentinel,
			yaml:    "redis: {addr: 10.0.0.1:6379, sentinel: {master: m, addrs: ['s1:26379']}}",
			wantErr: []string{`redis.addr: "10.0.0.1:6379" and redis.sentinel exclude each other`}},
		{name: "sentinel needs a master name", mode: RedisModeSentinel,
			yaml:    "redis: {sentinel: {addrs: ['s1:26379']}}",
			wantErr: []string{"redis.sentinel.master: required"}},
		{name: "sentinel needs addresses", mode: RedisModeSentinel,
			yaml:    "redis: {sentinel: {master: m}}",
			wantErr: []string{"redis.sentinel.addrs: required: list the sentinels"}},
		{name: "sentinel addresses are host:port, once each", mode: RedisModeSentinel,
			yaml: "redis: {sentinel: {master: m, addrs: ['s1:26379', 's1:26379', 's2', 's3:0']}}",
			wantErr: []string{`redis.sentinel.addrs[1]: "s1:26379" is listed twice`, `redis.sentinel.addrs[2]: "s2" is not host:port`,
				`redis.sentinel.addrs[3]: "s3:0": port "0" is not a number from 1 to 65535`}},
		{name: "cluster", mode: RedisModeCluster, yaml: "redis: {cluster: {addrs: ['c1:7000', 'c2:7000']}}"},
		{name: "cluster has only db 0", mode: RedisModeCluster,
			yaml:    "redis: {db: 2, cluster: {addrs: ['c1:7000']}}",
			wantErr: []string{"redis.db: 2: a Redis Cluster has only database 0"}},
		{name: "cluster and addr exclude each other", mode: RedisModeSentinel,
			yaml: "redis: {addr: 10.0.0.1:6379, cluster: {addrs: ['c1:7000']}, sentinel: {master: m, addrs: ['s1:26379']}}",
			wantErr: []string{`redis.addr: "10.0.0.1:6379" and redis.sentinel exclude each other`,
				`redis.addr: "10.0.0.1:6379" and redis.cluster exclude each other`,
				"redis.sentinel: redis.sentinel and redis.cluster exclude each other"}},
		{name: "negative db", mode: RedisModeSingle, yaml: "redis: {addr: r:6379, db: -1}",
			wantErr: []string{"redis.db: -1: must not be negative"}},
		{name: "empty addr", mode: RedisModeSingle, yaml: "redis: {addr: ''}",
			wantErr: []string{`redis.addr: required: "embedded", host:port, or configure redis.sentinel or redis.cluster`}},

		// Environment: a variable that picks a Redis replaces the file's choice.
		{name: "env sentinel replaces the file's addr", mode: RedisModeSentinel,
			yaml: "redis: {addr: 10.0.0.1:6379}",
			env:  map[string]string{"SYNCD_REDIS_SENTINEL_ADDRS": "s1:26379, s2:26379", "SYNCD_REDIS_SENTINEL_MASTER": "m"}},
		{name: "env addr replaces the file's sentinel", mode: RedisModeSingle,
			yaml: "redis: {sentinel: {master: m, addrs: ['s1:26379']}}",
			env:  map[string]string{"SYNCD_REDIS_ADDR": "10.0.0.2:6379"}},
		{name: "env cluster replaces the file's sentinel", mode: RedisModeCluster,
			yaml: "redis: {sentinel: {master: m, addrs: ['s1:26379']}}",
			env:  map[string]string{"SYNCD_REDIS_CLUSTER_ADDRS": "c1:7000,c2:7000"}},
		{name: "two env choices conflict", mode: RedisModeSentinel,
			env:     map[string]string{"SYNCD_REDIS_ADDR": "10.0.0.2:6379", "SYNCD_REDIS_SENTINEL_ADDRS": "s1:26379", "SYNCD_REDIS_SENTINEL_MASTER": "m"},
			wantErr: []string{"exclude each other", "(from SYNCD_REDIS_ADDR)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "syncd.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml+"\n"), 0o600))
			cfg, err := Load(p, false, env(tc.env))
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				assert.Equal(t, tc.mode, cfg.Redis.Mode())
				return
			}
			require.Error(t, err)
			for _, w := range tc.wantErr {
				assert.Contains(t, err.Error(), w)
			}
			parsed, perr := Parse([]byte(tc.yaml))
			require.NoError(t, perr)
			parsed.ApplyEnv(env(tc.env))
			assert.Equal(t, tc.mode, parsed.Redis.Mode())
		})
	}
}

func TestRedisEnvSentinel(t *testing.T) {
	cfg, err := Parse([]byte("redis: {addr: 10.0.0.1:6379}\n"))
	require.NoError(t, err)
	cfg.ApplyEnv(env(map[string]string{
		"SYNCD_REDIS_SENTINEL_ADDRS":    "s1:26379,s2:26379 s3:26379",
		"SYNCD_REDIS_SENTINEL_MASTER":   "imagesync",
		"SYNCD_REDIS_SENTINEL_PASSWORD": "sentinel-secret",
		"SYNCD_REDIS_PASSWORD":          "data-secret",
	}))
	require.NoError(t, cfg.Validate())
	assert.Equal(t, EmbeddedRedis, cfg.Redis.Addr, "the file's addr gives way to the sentinels")
	assert.Equal(t, []string{"s1:26379", "s2:26379", "s3:26379"}, cfg.Redis.Sentinel.Addrs)
	assert.Equal(t, "imagesync", cfg.Redis.Sentinel.Master)
	assert.Equal(t, "sentinel-secret", cfg.Redis.Sentinel.Password)
	assert.Equal(t, "data-secret", cfg.Redis.Password)
	assert.Equal(t, `master "imagesync" via sentinels s1:26379,s2:26379,s3:26379`, cfg.Redis.Describe())
}

func TestResolveRedisSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	cfg := Default()
	cfg.Redis.PasswordFile = write("redis.pw", "data-pw\n")
	cfg.Redis.Sentinel = RedisSentinel{Master: "m", Addrs: []string{"s1:26379"}, PasswordFile: write("sentinel.pw", " sentinel-pw \n")}
	require.NoError(t, cfg.ResolveRedisSecrets())
	assert.Equal(t, "data-pw", cfg.Redis.Password)
	assert.Equal(t, "sentinel-pw", cfg.Redis.Sentinel.Password)

	// A password given directly (or by the environment) wins over its file.
	cfg = Default()
	cfg.Redis.Sentinel = RedisSentinel{Password: "direct", PasswordFile: filepath.Join(dir, "missing")}
	require.NoError(t, cfg.ResolveRedisSecrets())
	assert.Equal(t, "direct", cfg.Redis.Sentinel.Password)

	cfg = Default()
	cfg.Redis.Sentinel.PasswordFile = filepath.Join(dir, "missing")
	err := cfg.ResolveRedisSecrets()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis.sentinel.password_file")

	cfg = Default()
	cfg.Redis.Sentinel.PasswordFile = write("empty.pw", "\n")
	require.NoError(t, cfg.ResolveRedisSecrets(), "an empty file means no password")
	assert.Empty(t, cfg.Redis.Sentinel.Password)
}

// syncd checks that the files the redis section names exist.
func TestRedisFilesCheckedForDaemon(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "syncd.yaml")
	yml := `cloud: {auth_url: "https://accounts.example.org/identity/v2.0", token: t}
redis:
  tls_ca_file: ` + filepath.Join(dir, "ca.pem") + `
  sentinel:
    master: imagesync
    addrs: [s1:26379]
    password_file: ` + filepath.Join(dir, "sentinel.pw") + `
`
	require.NoError(t, os.WriteFile(p, []byte(yml), 0o600))
	_, err := LoadWith(p, LoadOptions{Getenv: env(nil), Use: ForDaemon})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis.sentinel.password_file: "+filepath.Join(dir, "sentinel.pw")+" does not exist (line 7)")
	assert.Contains(t, err.Error(), "redis.tls_ca_file: "+filepath.Join(dir, "ca.pem")+" does not exist (line 3)")
}

// The sentinels' password file is a secret like the others.
func TestSentinelPasswordFilePermissions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sentinel.pw")
	require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
	require.NoError(t, os.Chmod(p, 0o640))
	cfg := Default()
	cfg.Redis.Sentinel = RedisSentinel{Master: "m", Addrs: []string{"s1:26379"}, PasswordFile: p}
	warnings, err := cfg.SecretFiles()
	require.NoError(t, err)
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], "redis.sentinel.password_file "+p+" is readable by its group (mode 0640)")
	cfg.Redis.Sentinel.Password = "from-env"
	warnings, _ = cfg.SecretFiles()
	assert.Empty(t, warnings, "a password given directly makes the file moot")
}
