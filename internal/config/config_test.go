package config

import (
	"os"
	"path/filepath"
	"strings"
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
		{"unknown key", "nodes: x\n", "nodes: unknown key (did you mean node?) (line 1)"},
		{"unknown nested key", "cloud:\n  tokn: x\n", "cloud.tokn: unknown key (did you mean cloud.token?) (line 2)"},
		{"unknown key in a list", "watch:\n  - dir: a\n    container: c\n    publik: true\n", "watch[0].publik: unknown key (did you mean watch[0].public?) (line 4)"},
		{"key set twice", "settle: 1s\nsettle: 2s\n", "settle: set twice (first on line 1) (line 2)"},
		{"bad duration", "settle: fast\n", `settle: "fast" is not a duration (use e.g. 5s, 1m30s) (line 1)`},
		{"duration without unit", "rescan: 5\n", `rescan: "5" is not a duration`},
		{"not a number", "upload: {files: two}\n", `upload.files: "two" is not a whole number (line 1)`},
		{"not a bool", "watch: [{dir: a, container: c, public: maybe}]\n", `watch[0].public: "maybe" is not true or false`},
		{"mapping for a scalar", "node: {a: b}\n", "node: want a string, found a mapping"},
		{"scalar for a section", "cloud: https://x\n", `cloud: want a mapping of keys (auth_url, token, token_file, timeout`},
		{"scalar for a list", "watch: ./images\n", `watch: want a list, found "./images"`},
		{"scalar for defaults", "watch: [{dir: a, container: c, defaults: linux}]\n", `watch[0].defaults: want a mapping of keys, found "linux"`},
		{"missing container", "watch: [{dir: ./a}]\n", "watch[0].container: required"},
		{"missing dir", "watch: [{container: c}]\n", "watch[0].dir: required"},
		{"dup dir", "watch: [{dir: ./a, container: c}, {dir: a, container: d}]\n", "watch[1].dir: a is watched twice (also watch[0].dir)"},
		{"bad files", "upload: {files: 0}\n", "upload.files: 0: want 1 to 64 (line 1)"},
		{"bad prefix", "watch: [{dir: a, container: c, prefix: ../x}]\n", `watch[0].prefix: "../x": no '.' or '..' segments`},
		{"bad pattern", "watch: [{dir: a, container: c, patterns: ['[']}]\n", `watch[0].patterns[0]: "[" is not a file name pattern`},
		{"bad log format", "log: {format: xml}\n", `log.format: "xml": want json or console`},
		{"bad log level", "log:\n  level: verbose\n", `log.level: "verbose": want debug, info, warn or error (line 2)`},
		{"tiny rescan", "rescan: 10ms\n", "rescan: 10ms: use at least 1s"},
		{"auth_url not a URL", "cloud: {auth_url: not a url}\n", `cloud.auth_url: "not a url" is not an http(s) URL`},
		{"auth_url without scheme", "cloud: {auth_url: accounts.example.org/identity/v2.0}\n", "is not an http(s) URL"},
		{"bad redis addr", "redis: {addr: localhost}\n", `redis.addr: "localhost" is not host:port`},
		{"bad listen", "http: {listen: ':http'}\n", `http.listen: ":http": port "http" is not a number`},
		{"bad cron", "schedule: {republish: 'every day'}\n", `schedule.republish: "every day"`},
		{"broken YAML", "cloud: [\n", "invalid YAML"},
		{"bad follow_symlinks", "watch: [{dir: a, container: c, follow_symlinks: always}]\n", `watch[0].follow_symlinks: "always": want inside, never or any`},
		{"public but not allowed", "watch: [{dir: a, container: c, public: true, allow_public: false}]\n", "watch[0].allow_public: false contradicts public: true"},
		{"unknown owner", "watch: [{dir: a, container: c, owners: [no-such-user-or-group-xyz]}]\n", `watch[0].owners: "no-such-user-or-group-xyz": no user or group of that name`},
		{"bad owner kind", "watch: [{dir: a, container: c, owners: ['uid:0']}]\n", `watch[0].owners: "uid:0": want NAME, ID, user:NAME|ID or group:NAME|ID`},
		{"bad member", "watch: [{dir: a, container: c, allowed_members: ['a,b']}]\n", `watch[0].allowed_members[0]: "a,b" is not a user uuid`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tt.yaml), 0o600))
			_, err := Load(p, false, env(nil))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			for _, pr := range ve.Problems {
				assert.NotRegexp(t, `config\.|string|int|bool|struct|map\[|Duration`, strings.ReplaceAll(pr.String(), "a string", ""),
					"no Go type names in messages")
			}
		})
	}
}

// Every problem comes out in one run, each by key path, so an operator
// fixes a configuration in one round rather than five.
func TestAllProblemsInOneRun(t *testing.T) {
	p := filepath.Join(t.TempDir(), "syncd.yaml")
	require.NoError(t, os.WriteFile(p, []byte(`node: build host
cloud:
  auth_url: not a url
  tokn: abc
settle: five
upload:
  files: 0
  blocks: many
watch:
  - dir: ./images
    publik: yes
log:
  level: verbose
`), 0o600))
	_, err := LoadWith(p, LoadOptions{Getenv: env(nil), Use: ForDaemon})
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	var got []string
	for _, pr := range ve.Problems {
		got = append(got, pr.String())
	}
	assert.Equal(t, []string{
		`cloud.tokn: unknown key (did you mean cloud.token?) (line 4)`,
		`settle: "five" is not a duration (use e.g. 5s, 1m30s) (line 5)`,
		`upload.blocks: "many" is not a whole number (line 8)`,
		`watch[0].publik: unknown key (did you mean watch[0].public?) (line 11)`,
		`node: "build host": no spaces, ':' or braces (it names this node's upload queue) (line 1)`,
		`cloud.auth_url: "not a url" is not an http(s) URL (line 3)`,
		`cloud.token: required: set cloud.token, cloud.token_file or SYNCD_TOKEN (line 2)`,
		`upload.files: 0: want 1 to 64 (line 7)`,
		`watch[0].container: required (line 10)`,
		`log.level: "verbose": want debug, info, warn or error (line 13)`,
	}, got)
	assert.Contains(t, err.Error(), "invalid configuration "+p+" (10 problems):\n  - cloud.tokn: unknown key")
}

func TestDaemonRequirements(t *testing.T) {
	dir := t.TempDir()
	write := func(yaml string) string {
		p := filepath.Join(dir, "syncd.yaml")
		require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
		return p
	}
	tests := []struct {
		name, yaml string
		env        map[string]string
		use        Use
		want       []string // problems; nil means valid
	}{
		{"no auth_url", "cloud: {token: t}\n", nil, ForDaemon, []string{"cloud.auth_url: required: the identity URL"}},
		{"no token", "cloud: {auth_url: 'https://a.example/identity/v2.0'}\n", nil, ForDaemon, []string{"cloud.token: required"}},
		{"token from env", "cloud: {auth_url: 'https://a.example/identity/v2.0'}\n", map[string]string{"SYNCD_TOKEN": "x"}, ForDaemon, nil},
		{"missing token file", "cloud: {auth_url: 'https://a.example/identity/v2.0', token_file: /nonexistent/token}\n", nil, ForDaemon,
			[]string{"cloud.token_file: /nonexistent/token does not exist (line 1)"}},
		{"auth_url from env", "cloud: {token: t}\n", map[string]string{"SYNCD_AUTH_URL": "ftp://x"}, ForDaemon,
			[]string{`cloud.auth_url: "ftp://x" is not an http(s) URL (from SYNCD_AUTH_URL)`}},
		{"missing ca_file", "cloud: {auth_url: 'https://a.example/identity/v2.0', token: t, ca_file: /nonexistent/ca.pem}\n", nil, ForDaemon,
			[]string{"cloud.ca_file: /nonexistent/ca.pem does not exist (line 1)"}},
		{"ca_file without a certificate", "cloud: {auth_url: 'https://a.example/identity/v2.0', token: t, ca_file: " + write2(t, dir, "x.pem", "hello") + "}\n", nil, ForDaemon,
			[]string{"x.pem holds no PEM certificate"}},
		{"ca_file and insecure", "cloud: {auth_url: 'https://a.example/identity/v2.0', token: t, ca_file: /x, insecure_skip_verify: true}\n", nil, ForCtl,
			[]string{"cloud.insecure_skip_verify: set together with cloud.ca_file: set one or the other"}},
		{"ctl needs no cloud", "node: n\n", nil, ForCtl, nil},
		{"dev brings its cloud and redis", "redis: {addr: ''}\n", nil, ForDev, nil},
		{"ctl still checks what is set", "cloud: {auth_url: x}\n", nil, ForCtl, []string{`cloud.auth_url: "x" is not an http(s) URL`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadWith(write(tt.yaml), LoadOptions{Getenv: env(tt.env), Use: tt.use})
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			require.Len(t, ve.Problems, len(tt.want), "%v", err)
			for i, w := range tt.want {
				assert.Contains(t, ve.Problems[i].String(), w)
			}
		})
	}
}

func write2(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// Turning TLS verification off is allowed, and said loudly at every start.
func TestInsecureSkipVerifyWarns(t *testing.T) {
	p := write2(t, t.TempDir(), "c.yaml", "cloud: {auth_url: 'https://a.example/identity/v2.0', token: t, insecure_skip_verify: true}\n")
	cfg, err := LoadWith(p, LoadOptions{Getenv: env(nil), Use: ForDaemon})
	require.NoError(t, err)
	require.Len(t, cfg.Warnings, 1)
	assert.Contains(t, cfg.Warnings[0], "cloud.insecure_skip_verify is true: the cloud's TLS certificate is NOT verified")

	p = write2(t, t.TempDir(), "c.yaml", "cloud: {auth_url: 'http://cloud.example/identity/v2.0', token: t}\n")
	cfg, err = LoadWith(p, LoadOptions{Getenv: env(nil), Use: ForDaemon})
	require.NoError(t, err)
	require.Len(t, cfg.Warnings, 1)
	assert.Contains(t, cfg.Warnings[0], "plain http")
}

func TestParseRejectsWhatDoesNotFit(t *testing.T) {
	_, err := Parse([]byte("cloud: {tokn: x}\n"))
	assert.ErrorContains(t, err, "cloud.tokn: unknown key")
	cfg, err := Parse([]byte("upload: {files: 0}\n"))
	require.NoError(t, err, "Parse does not validate")
	assert.Equal(t, 0, cfg.Upload.Files)
}

// FuzzParse: no YAML makes the walker panic, and what it accepts
// round-trips through the decoder.
func FuzzParse(f *testing.F) {
	f.Add([]byte(specExample))
	f.Add([]byte("watch: [{dir: a, container: c, defaults: {properties: {A: *x}}}]\nx: &x 1\n"))
	f.Add([]byte("cloud: &c {token: a}\nredis: *c\n"))
	f.Add([]byte("watch:\n  - !!map {dir: a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			require.NotEmpty(t, ve.Problems)
			return
		}
		_ = cfg.Validate()
	})
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), false, env(nil))
	assert.ErrorContains(t, err, "nope.yaml does not exist (copy configs/syncd.example.yaml there")
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

// The configurations shipped in configs/ stay valid as keys change.
func TestShippedConfigsAreValid(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f, false, env(nil))
			assert.NoError(t, err)
		})
	}
}

func TestPolicyKeys(t *testing.T) {
	cfg, err := Parse([]byte(`
watch:
  - {dir: a, container: c}
  - {dir: b, container: c, follow_symlinks: never, allow_public: false, allowed_members: [], owners: [root, "group:0", "1000"]}
  - {dir: d, container: c, allow_public: true, allowed_members: [u1, u2]}
`))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	a, b, d := cfg.Watch[0], cfg.Watch[1], cfg.Watch[2]
	assert.True(t, a.PublicAllowed())
	assert.Nil(t, a.AllowedMembers, "unset: any members")
	assert.False(t, b.PublicAllowed())
	assert.NotNil(t, b.AllowedMembers, "set to []: no members")
	assert.Empty(t, b.AllowedMembers)
	assert.Equal(t, FollowNever, b.FollowSymlinks)
	assert.True(t, d.PublicAllowed())
	assert.Equal(t, []string{"u1", "u2"}, d.AllowedMembers)

	o, err := ParseOwners(b.Owners)
	require.NoError(t, err)
	assert.True(t, o.Allows(0, 1234), "user root")
	assert.True(t, o.Allows(1234, 0), "group 0")
	assert.True(t, o.Allows(1000, 1234), "a bare number is a uid")
	assert.False(t, o.Allows(1234, 1000), "a bare number is not a gid")
	assert.Equal(t, "group 0, user 1000, user root", o.String())
	none, err := ParseOwners(nil)
	require.NoError(t, err)
	assert.True(t, none.Allows(1, 2), "no owners configured: everybody")
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	cfg := Default()
	cfg.Cloud.TokenFile = write("token", 0o604)
	cfg.Redis.PasswordFile = write("pw", 0o600)
	cfg.HTTP.WebConfigFile = write("web.yml", 0o660)
	warnings, err := cfg.SecretFiles()
	require.NoError(t, err)
	require.Len(t, warnings, 2)
	assert.Contains(t, warnings[0], "cloud.token_file "+cfg.Cloud.TokenFile+" is readable by others (mode 0604)")
	assert.Contains(t, warnings[1], "http.web_config_file "+cfg.HTTP.WebConfigFile+" is readable by its group (mode 0660)")

	// A token given inline or by SYNCD_TOKEN makes the file moot.
	cfg.Cloud.Token = "from-env"
	warnings, _ = cfg.SecretFiles()
	assert.Len(t, warnings, 1)

	cfg.StrictPermissions = true
	_, err = cfg.SecretFiles()
	require.ErrorContains(t, err, "strict_permissions: true refuses to start")

	c2, err := Parse([]byte("strict_permissions: true\nhttp: {web_config_file: /etc/syncd/web.yml}\n"))
	require.NoError(t, err)
	assert.True(t, c2.StrictPermissions)
	assert.Equal(t, "/etc/syncd/web.yml", c2.HTTP.WebConfigFile)
}
