// Package config loads the syncd/syncctl configuration: YAML (the SPEC §4
// contract), then environment overrides, then validation with messages that
// name the key and say what to do.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	_ "time/tzdata" // schedule.timezone works on hosts and images without a zoneinfo database

	"go.yaml.in/yaml/v3"
)

// DefaultPath is where syncd and syncctl look without --config.
const DefaultPath = "configs/syncd.yaml"

// EmbeddedRedis is the redis.addr value selecting the in-process Redis.
const EmbeddedRedis = "embedded"

// Config is the whole file. Keys are a fixed contract (see SPEC §4).
type Config struct {
	Node     string   `yaml:"node"`
	Cloud    Cloud    `yaml:"cloud"`
	Redis    Redis    `yaml:"redis"`
	StateDir string   `yaml:"state_dir"`
	Settle   Duration `yaml:"settle"`
	Rescan   Duration `yaml:"rescan"`
	HTTP     HTTP     `yaml:"http"`
	Upload   Upload   `yaml:"upload"`
	Watch    []Watch  `yaml:"watch"`
	Schedule Schedule `yaml:"schedule"`
	Log      Log      `yaml:"log"`
	// StrictPermissions makes syncd refuse to start, rather than warn, when
	// a file holding a secret (cloud.token_file, redis.password_file,
	// http.web_config_file) can be read by group or others.
	StrictPermissions bool `yaml:"strict_permissions"`

	// Source is the file the config came from ("" for defaults only).
	Source string `yaml:"-"`
	// Warnings are non-fatal findings (e.g. a world-readable file holding a token).
	Warnings []string `yaml:"-"`

	fromEnv map[string]string // key path -> the SYNCD_* variable that set it
	lines   map[string]int    // key path -> its line in Source
}

// Cloud is where the Synnefo deployment is and how to authenticate.
type Cloud struct {
	AuthURL   string `yaml:"auth_url"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// Timeout bounds one HTTP request's headers wait (not a whole upload).
	Timeout Duration `yaml:"timeout"`
	// CAFile is a PEM bundle of the CA certificates to verify the cloud
	// with, instead of the system roots (a private CA).
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify turns certificate verification off: anyone on the
	// path can read the token and change what is uploaded. For throwaway
	// test clouds only; syncd and syncctl warn about it at every start.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Redis selects the queue backend: the embedded server (the default), one
// server at addr, a Sentinel-monitored master, or a Redis Cluster.
type Redis struct {
	Addr           string `yaml:"addr"`
	EmbeddedListen string `yaml:"embedded_listen"`
	// Username, Password and PasswordFile authenticate to the data nodes
	// (the master, or every cluster node); Username is for Redis 6 ACLs.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
	// TLS (1.2+) applies to every connection: data nodes and sentinels.
	TLS bool `yaml:"tls"`
	// TLSCAFile is a PEM bundle to verify the servers with instead of the
	// system roots (a private CA); it implies tls.
	TLSCAFile string        `yaml:"tls_ca_file"`
	Sentinel  RedisSentinel `yaml:"sentinel"`
	Cluster   RedisCluster  `yaml:"cluster"`
}

// RedisSentinel finds the master through Redis Sentinel and follows its
// failovers.
type RedisSentinel struct {
	// Master is the name the sentinels monitor (sentinel monitor <name> ...).
	Master string   `yaml:"master"`
	Addrs  []string `yaml:"addrs"`
	// Username, Password and PasswordFile authenticate to the sentinels
	// (their requirepass or ACL), which may differ from the data nodes'.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// RedisCluster names some nodes of a Redis Cluster; the rest are discovered.
type RedisCluster struct {
	Addrs []string `yaml:"addrs"`
}

// RedisMode is how syncd reaches Redis.
type RedisMode string

// Redis modes.
const (
	RedisModeEmbedded RedisMode = "embedded" // in-process miniredis
	RedisModeSingle   RedisMode = "single"   // one server at redis.addr
	RedisModeSentinel RedisMode = "sentinel" // the master redis.sentinel names
	RedisModeCluster  RedisMode = "cluster"  // a Redis Cluster
)

// Mode says which Redis the configuration selects. "embedded" is only the
// default of redis.addr: configuring sentinels or cluster nodes replaces it.
func (r Redis) Mode() RedisMode {
	switch {
	case len(r.Sentinel.Addrs) > 0 || r.Sentinel.Master != "":
		return RedisModeSentinel
	case len(r.Cluster.Addrs) > 0:
		return RedisModeCluster
	case r.Addr == EmbeddedRedis:
		return RedisModeEmbedded
	default:
		return RedisModeSingle
	}
}

// Describe names the Redis for messages: an address, or the sentinel master
// name with the sentinels, or the cluster seed nodes.
func (r Redis) Describe() string {
	switch r.Mode() {
	case RedisModeSentinel:
		return fmt.Sprintf("master %q via sentinels %s", r.Sentinel.Master, strings.Join(r.Sentinel.Addrs, ","))
	case RedisModeCluster:
		return "cluster " + strings.Join(r.Cluster.Addrs, ",")
	case RedisModeEmbedded:
		return "embedded " + r.EmbeddedListen
	default:
		return r.Addr
	}
}

// HTTP is the metrics/health listener.
type HTTP struct {
	Listen string `yaml:"listen"`
	// WebConfigFile is a Prometheus exporter-toolkit web configuration
	// (TLS, basic auth) for the listener; empty serves plain HTTP without
	// authentication, which is only fit for loopback.
	WebConfigFile string `yaml:"web_config_file"`
}

// Upload tunes concurrency.
type Upload struct {
	Files       int `yaml:"files"`
	Blocks      int `yaml:"blocks"`
	HashWorkers int `yaml:"hash_workers"`
}

// Watch is one watched folder and where its images go.
type Watch struct {
	Dir            string         `yaml:"dir"`
	Container      string         `yaml:"container"`
	Prefix         string         `yaml:"prefix"`
	Public         bool           `yaml:"public"`
	UploadMetafile *bool          `yaml:"upload_metafile"`
	Defaults       map[string]any `yaml:"defaults"`
	Patterns       []string       `yaml:"patterns"`
	// Shared marks a root every node can read (e.g. NFS): its uploads may run
	// on any node instead of this node's own queue.
	Shared bool `yaml:"shared"`
	// UnregisterDeleted unregisters an image from Plankton when its file is
	// removed from the folder (the Pithos object stays). Off by default:
	// a removal is only logged.
	UnregisterDeleted bool `yaml:"unregister_deleted"`

	// FollowSymlinks says which symlinked images and metafiles are used:
	// "inside" (the default: only when the target resolves inside a watch
	// root), "never", or "any" (wherever they point; warned about at start).
	FollowSymlinks string `yaml:"follow_symlinks,omitempty"`
	// Policy caps, for folders that more people can write to than the
	// token should serve. Each refusal is an archived failure naming the
	// file and the rule.
	//
	// AllowPublic false refuses metafiles and templates that make an
	// image public (unset means allowed).
	AllowPublic *bool `yaml:"allow_public,omitempty"`
	// AllowedMembers, when set (even to []), lists the only users a
	// metafile or template may share an image with.
	AllowedMembers []string `yaml:"allowed_members,omitempty"`
	// Owners, when set, lists the users and groups (names or numeric ids;
	// "user:x" or "group:x" to be explicit) whose files are accepted: an
	// image or metafile owned by anybody else is refused.
	Owners []string `yaml:"owners,omitempty"`
	// RequireDeployable refuses to register a diskdump that snf-image
	// could not deploy: one with no OSFAMILY or ROOT_PARTITION after the
	// metafiles and detection. Off by default: such an image is registered
	// with a warning.
	RequireDeployable bool `yaml:"require_deployable,omitempty"`
}

// Symlink policies of FollowSymlinks.
const (
	FollowInside = "inside"
	FollowNever  = "never"
	FollowAny    = "any"
)

// PublicAllowed reports whether metafiles may make images public.
func (w Watch) PublicAllowed() bool { return w.AllowPublic == nil || *w.AllowPublic }

// UploadsMetafile reports whether <object>.meta is uploaded after registration.
func (w Watch) UploadsMetafile() bool { return w.UploadMetafile == nil || *w.UploadMetafile }

// Schedule holds cron specs.
type Schedule struct {
	Republish string `yaml:"republish"`
	// Timezone is the IANA zone the specs are read in (default UTC). Every
	// node sharing a Redis must use the same one, or their ticks differ.
	Timezone string `yaml:"timezone"`
}

// Location is the schedule's time zone.
func (s Schedule) Location() (*time.Location, error) {
	if s.Timezone == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(s.Timezone)
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or console
}

// Duration is a time.Duration written as "5s", "1m".
type Duration time.Duration

// UnmarshalYAML accepts Go duration strings. Its messages name no line or
// key: the caller adds them.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return errors.New("want a duration such as 5s or 1m")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. 5s, 1m30s)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the built-in defaults (SPEC §4).
func Default() *Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return &Config{
		Node:     host,
		Redis:    Redis{Addr: EmbeddedRedis, EmbeddedListen: "127.0.0.1:6390"},
		StateDir: "./state",
		Settle:   Duration(5 * time.Second),
		Rescan:   Duration(time.Minute),
		HTTP:     HTTP{Listen: "127.0.0.1:9464"},
		Upload:   Upload{Files: 2, Blocks: 8},
		Cloud:    Cloud{Timeout: Duration(2 * time.Minute)},
		Log:      Log{Level: "info", Format: "json"},
		Schedule: Schedule{Timezone: "UTC"},
	}
}

// LoadOptions say how to load a configuration.
type LoadOptions struct {
	// AllowMissing accepts a missing file (the defaults are used).
	AllowMissing bool
	// Getenv reads the SYNCD_* overrides; nil means os.Getenv.
	Getenv func(string) string
	// Use selects what is required (see Use).
	Use Use
}

// Load reads path (which may be missing only when allowMissing), applies the
// environment and checks every key that is set (ForCtl).
func Load(path string, allowMissing bool, getenv func(string) string) (*Config, error) {
	return LoadWith(path, LoadOptions{AllowMissing: allowMissing, Getenv: getenv})
}

// LoadWith reads path over the defaults, applies the environment and
// validates for o.Use. Every problem, from the YAML (unknown keys, values of
// the wrong kind) to the checks of validate.go, comes back in one
// *ValidationError, each by key path.
func LoadWith(path string, o LoadOptions) (*Config, error) {
	cfg := Default()
	p := &problems{}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		cfg.Source = path
		decodeYAML(data, cfg, p)
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o004 != 0 && cfg.Cloud.Token != "" {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("config %s holds a token and is world-readable: chmod 600 it, or use cloud.token_file / SYNCD_TOKEN", path))
		}
	case errors.Is(err, os.ErrNotExist) && o.AllowMissing:
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("config %s does not exist (copy configs/syncd.example.yaml there, or pass another --config FILE)", path)
	default:
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(p.list) > 0 && p.list[0].Key == "" {
		// Broken YAML: the checks would only repeat the defaults.
		return nil, p.err(path)
	}
	cfg.ApplyEnv(o.Getenv)
	p.env, p.lines = cfg.fromEnv, cfg.lines
	for i := range p.list {
		p.list[i].Env = cfg.fromEnv[p.list[i].Key]
	}
	cfg.check(p, o.Use)
	if err := p.err(cfg.Source); err != nil {
		return nil, err
	}
	cfg.Warnings = append(cfg.Warnings, cfg.warnings(o.Use)...)
	return cfg, nil
}

// Parse reads YAML over the defaults without env or validation (tests,
// tools); it fails only on YAML that does not fit the configuration.
func Parse(data []byte) (*Config, error) {
	cfg := Default()
	p := &problems{}
	decodeYAML(data, cfg, p)
	if err := p.err(""); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ApplyEnv applies the SYNCD_* overrides; SYNCD_TOKEN and SYNCD_REDIS_ADDR are
// the contract, the rest are conveniences.
// The key paths they set are remembered, so that a bad value is blamed on
// its variable.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if c.fromEnv == nil {
		c.fromEnv = map[string]string{}
	}
	set := func(dst *string, key, env string) {
		if v := getenv(env); v != "" {
			*dst = v
			c.fromEnv[key] = env
		}
	}
	set(&c.Node, "node", "SYNCD_NODE")
	set(&c.Cloud.AuthURL, "cloud.auth_url", "SYNCD_AUTH_URL")
	set(&c.Cloud.TokenFile, "cloud.token_file", "SYNCD_TOKEN_FILE")
	c.applyRedisEnv(getenv)
	set(&c.Redis.EmbeddedListen, "redis.embedded_listen", "SYNCD_REDIS_EMBEDDED_LISTEN")
	set(&c.StateDir, "state_dir", "SYNCD_STATE_DIR")
	set(&c.HTTP.Listen, "http.listen", "SYNCD_HTTP_LISTEN")
	set(&c.Log.Level, "log.level", "SYNCD_LOG_LEVEL")
	if v := getenv("SYNCD_TOKEN"); v != "" {
		c.Cloud.Token = v
		c.Cloud.TokenFile = ""
		c.fromEnv["cloud.token"] = "SYNCD_TOKEN"
	}
}

// applyRedisEnv applies the SYNCD_REDIS_* overrides. A variable that picks
// a Redis (SYNCD_REDIS_ADDR, SYNCD_REDIS_SENTINEL_ADDRS,
// SYNCD_REDIS_CLUSTER_ADDRS) replaces the file's choice rather than adding a
// second one; two such variables at once are left for the checks to report.
func (c *Config) applyRedisEnv(getenv func(string) string) {
	r := &c.Redis
	addr, sentinels, cluster := getenv("SYNCD_REDIS_ADDR"), getenv("SYNCD_REDIS_SENTINEL_ADDRS"), getenv("SYNCD_REDIS_CLUSTER_ADDRS")
	picks := 0
	for _, v := range []string{addr, sentinels, cluster} {
		if v != "" {
			picks++
		}
	}
	if picks == 1 {
		r.Addr, r.Sentinel.Addrs, r.Cluster.Addrs = EmbeddedRedis, nil, nil
		if sentinels == "" {
			r.Sentinel.Master = ""
		}
	}
	if addr != "" {
		r.Addr = addr
		c.fromEnv["redis.addr"] = "SYNCD_REDIS_ADDR"
	}
	if sentinels != "" {
		r.Sentinel.Addrs = splitList(sentinels)
		c.fromEnv["redis.sentinel.addrs"] = "SYNCD_REDIS_SENTINEL_ADDRS"
	}
	if cluster != "" {
		r.Cluster.Addrs = splitList(cluster)
		c.fromEnv["redis.cluster.addrs"] = "SYNCD_REDIS_CLUSTER_ADDRS"
	}
	for _, e := range []struct {
		dst       *string
		key, name string
	}{
		{&r.Sentinel.Master, "redis.sentinel.master", "SYNCD_REDIS_SENTINEL_MASTER"},
		{&r.Password, "redis.password", "SYNCD_REDIS_PASSWORD"},
		{&r.Sentinel.Password, "redis.sentinel.password", "SYNCD_REDIS_SENTINEL_PASSWORD"},
	} {
		if v := getenv(e.name); v != "" {
			*e.dst = v
			c.fromEnv[e.key] = e.name
		}
	}
}

// splitList splits "a,b c" into its non-empty items.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// FromEnv returns the SYNCD_* variable that set a key path, or "".
func (c *Config) FromEnv(key string) string { return c.fromEnv[key] }

// Origin says where a key path's value came from: "SYNCD_NODE",
// "configs/syncd.yaml line 3", or "" for a built-in default.
func (c *Config) Origin(key string) string {
	if env := c.fromEnv[key]; env != "" {
		return env
	}
	if line, ok := c.lines[key]; ok && c.Source != "" {
		return fmt.Sprintf("%s line %d", c.Source, line)
	}
	return ""
}

// ResolveSecrets reads token_file and password_file. Kept apart from Load so
// syncctl, which needs no token, never reads it.
func (c *Config) ResolveSecrets() error {
	if c.Cloud.Token == "" && c.Cloud.TokenFile != "" {
		b, err := os.ReadFile(c.Cloud.TokenFile)
		if err != nil {
			return fmt.Errorf("cloud.token_file: %w", err)
		}
		c.Cloud.Token = strings.TrimSpace(string(b))
		if c.Cloud.Token == "" {
			return fmt.Errorf("cloud.token_file %s is empty", c.Cloud.TokenFile)
		}
	}
	return c.ResolveRedisSecrets()
}

// ResolveRedisSecrets reads redis.password_file and
// redis.sentinel.password_file (a password given directly, or through the
// environment, wins). syncctl calls only this: it needs no cloud token.
func (c *Config) ResolveRedisSecrets() error {
	read := func(dst *string, file, key string) error {
		if *dst != "" || file == "" {
			return nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		// An empty file means no password, as it always has.
		*dst = strings.TrimSpace(string(b))
		return nil
	}
	if err := read(&c.Redis.Password, c.Redis.PasswordFile, "redis.password_file"); err != nil {
		return err
	}
	return read(&c.Redis.Sentinel.Password, c.Redis.Sentinel.PasswordFile, "redis.sentinel.password_file")
}

// ImagePatterns returns the image globs of a watch entry.
func (w Watch) ImagePatterns() []string {
	if len(w.Patterns) == 0 {
		return []string{"*.diskdump"}
	}
	return w.Patterns
}

// DevConfigFile is where `syncd --dev` leaves the configuration it runs
// with (under its state_dir), so that syncctl, run beside it with no
// configuration, reaches the same Redis, cloud and watch roots.
const DevConfigFile = "dev-syncd.yaml"

// WriteDev writes the parts of c that syncctl needs to path, with the token
// left in tokenFile rather than in the file.
func (c *Config) WriteDev(path, tokenFile string) error {
	out := map[string]any{
		"node":      c.Node,
		"state_dir": c.StateDir,
		"cloud":     map[string]any{"auth_url": c.Cloud.AuthURL, "token_file": tokenFile},
		"redis":     map[string]any{"addr": c.Redis.Addr, "embedded_listen": c.Redis.EmbeddedListen},
		"watch":     c.Watch,
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		return err
	}
	b = append([]byte("# Written by `syncd --dev` for syncctl; it is rewritten at every start.\n"), b...)
	return os.WriteFile(path, b, 0o600)
}
