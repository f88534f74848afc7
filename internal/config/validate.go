package config

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Use says what a configuration is loaded for: syncd needs more of it than
// syncctl, which may only read a queue.
type Use int

const (
	// ForCtl checks every key that is set (syncctl, tools).
	ForCtl Use = iota
	// ForDaemon also requires what syncd cannot run without (the cloud's
	// address and a token source) and checks that the files it names exist.
	ForDaemon
	// ForDev is `syncd --dev`: dev mode brings its own cloud and Redis, so
	// the cloud and redis sections need not be set.
	ForDev
)

// Problem is one thing wrong with a configuration, by key path.
type Problem struct {
	Key  string // key path (cloud.auth_url, watch[0].dir); "" for the file as a whole
	Msg  string
	Line int    // line in the file; 0 when the value is a default or from the environment
	Env  string // the environment variable the value came from, if any
}

func (p Problem) String() string {
	s := p.Msg
	if p.Key != "" {
		s = p.Key + ": " + p.Msg
	}
	switch {
	case p.Env != "":
		s += " (from " + p.Env + ")"
	case p.Line > 0:
		s += fmt.Sprintf(" (line %d)", p.Line)
	}
	return s
}

// ValidationError lists every problem of a configuration at once.
type ValidationError struct {
	File     string // "" when no file was read
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	fmt.Fprintf(&b, " (%d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p.String())
	}
	return b.String()
}

// problems collects Problems; env maps key paths to the SYNCD_* variable
// that set them, so a bad value from the environment is blamed on it.
type problems struct {
	list  []Problem
	env   map[string]string
	lines map[string]int // key path -> line in the file
}

// add records a problem at key's line, or at the line of the nearest
// enclosing key that is in the file (a required key that is missing).
func (p *problems) add(key, format string, a ...any) {
	line := 0
	for k := key; k != "" && line == 0; {
		line = p.lines[k]
		if i := strings.LastIndexAny(k, ".["); i >= 0 {
			k = k[:i]
		} else {
			k = ""
		}
	}
	p.addLine(key, line, format, a...)
}

func (p *problems) addLine(key string, line int, format string, a ...any) {
	p.list = append(p.list, Problem{Key: key, Msg: fmt.Sprintf(format, a...), Line: line, Env: p.env[key]})
}

func (p *problems) err(file string) error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{File: file, Problems: p.list}
}

// Validate checks every key that is set (as for ForCtl).
func (c *Config) Validate() error { return c.ValidateFor(ForCtl) }

// ValidateFor checks everything that can be checked without the network,
// for the given use, and returns a *ValidationError listing every problem.
func (c *Config) ValidateFor(use Use) error {
	p := &problems{env: c.fromEnv, lines: c.lines}
	c.check(p, use)
	return p.err(c.Source)
}

// check holds the per-key checks, one section per top-level key, in the
// order of the file. A new key gets its line here (and its default in
// Default); the helpers below say things the same way everywhere:
// "key: what is wrong: what is wanted".
func (c *Config) check(p *problems, use Use) {
	daemon := use == ForDaemon
	wantCloud := use != ForDev

	// node
	switch {
	case c.Node == "":
		p.add("node", "required (it names this node's upload queue)")
	case strings.ContainsAny(c.Node, " \t:{}"):
		p.add("node", "%q: no spaces, ':' or braces (it names this node's upload queue)", c.Node)
	}

	// cloud
	if wantCloud {
		if c.Cloud.AuthURL == "" && daemon {
			p.add("cloud.auth_url", "required: the identity URL, e.g. https://accounts.example.org/identity/v2.0")
		}
		if c.Cloud.AuthURL != "" {
			checkHTTPURL(p, "cloud.auth_url", c.Cloud.AuthURL)
		}
		if daemon && c.Cloud.Token == "" && c.Cloud.TokenFile == "" {
			p.add("cloud.token", "required: set cloud.token, cloud.token_file or SYNCD_TOKEN")
		}
		if daemon && c.Cloud.Token == "" && c.Cloud.TokenFile != "" {
			checkFile(p, "cloud.token_file", c.Cloud.TokenFile)
		}
	}
	switch {
	case c.Cloud.CAFile != "" && c.Cloud.InsecureSkipVerify:
		p.add("cloud.insecure_skip_verify", "set together with cloud.ca_file: set one or the other")
	case c.Cloud.CAFile != "" && daemon:
		checkPEMFile(p, "cloud.ca_file", c.Cloud.CAFile)
	}
	if c.Cloud.Timeout.D() < 0 {
		p.add("cloud.timeout", "%s: must not be negative", c.Cloud.Timeout.D())
	}

	// redis (dev mode always runs the embedded one)
	if use == ForDev {
		if c.Redis.EmbeddedListen != "" {
			checkHostPort(p, "redis.embedded_listen", c.Redis.EmbeddedListen)
		}
	} else {
		c.Redis.check(p, daemon)
	}

	// state_dir
	if c.StateDir == "" {
		p.add("state_dir", "required (the hashmap cache and local state live there)")
	}

	// settle, rescan
	if c.Settle.D() < 0 {
		p.add("settle", "%s: must not be negative", c.Settle.D())
	}
	switch r := c.Rescan.D(); {
	case r < 0:
		p.add("rescan", "%s: must not be negative (0 disables periodic rescans)", r)
	case r > 0 && r < time.Second:
		p.add("rescan", "%s: use at least 1s (or 0 to disable periodic rescans)", r)
	}

	// http
	if l := c.HTTP.Listen; l != "" && l != "off" {
		checkHostPort(p, "http.listen", l)
	}
	if daemon && c.HTTP.WebConfigFile != "" {
		checkFile(p, "http.web_config_file", c.HTTP.WebConfigFile)
	}

	// upload
	checkRange(p, "upload.files", c.Upload.Files, 1, 64)
	checkRange(p, "upload.blocks", c.Upload.Blocks, 1, 256)
	checkRange(p, "upload.hash_workers", c.Upload.HashWorkers, 0, 256)

	// watch
	seen := map[string]string{}
	for i, w := range c.Watch {
		key := fmt.Sprintf("watch[%d]", i)
		if w.Dir == "" {
			p.add(key+".dir", "required")
		} else {
			abs, _ := filepath.Abs(w.Dir)
			if first, dup := seen[abs]; dup {
				p.add(key+".dir", "%s is watched twice (also %s.dir)", w.Dir, first)
			}
			seen[abs] = key
		}
		switch {
		case w.Container == "":
			p.add(key+".container", "required")
		case strings.Contains(w.Container, "/"):
			p.add(key+".container", "%q: no '/'", w.Container)
		}
		for _, seg := range strings.Split(strings.Trim(w.Prefix, "/"), "/") {
			if seg == ".." || seg == "." {
				p.add(key+".prefix", "%q: no '.' or '..' segments", w.Prefix)
				break
			}
		}
		for j, pat := range w.Patterns {
			if _, err := filepath.Match(pat, "x"); err != nil || pat == "" {
				p.add(fmt.Sprintf("%s.patterns[%d]", key, j), "%q is not a file name pattern such as *.diskdump", pat)
			}
		}
		if w.FollowSymlinks != "" {
			checkOneOf(p, key+".follow_symlinks", w.FollowSymlinks, FollowInside, FollowNever, FollowAny)
		}
		if w.Public && !w.PublicAllowed() {
			p.add(key+".allow_public", "false contradicts public: true; drop one")
		}
		for j, m := range w.AllowedMembers {
			if strings.TrimSpace(m) == "" || strings.ContainsAny(m, ",;= \t") {
				p.add(fmt.Sprintf("%s.allowed_members[%d]", key, j), "%q is not a user uuid", m)
			}
		}
		if _, err := ParseOwners(w.Owners); err != nil {
			p.add(key+".owners", "%v", err)
		}
	}

	// schedule
	if s := c.Schedule.Republish; s != "" {
		if _, err := cron.ParseStandard(s); err != nil {
			p.add("schedule.republish", "%q: %v (use 5-field cron such as \"0 3 * * *\", or @every 1h; empty disables)", s, err)
		}
	}
	if _, err := c.Schedule.Location(); err != nil {
		p.add("schedule.timezone", "%q: %v (use an IANA zone name such as UTC or Europe/Athens)", c.Schedule.Timezone, err)
	}

	// log
	checkOneOf(p, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	checkOneOf(p, "log.format", c.Log.Format, "json", "console")
}

// check checks the redis section: exactly one way to reach Redis (the
// embedded default gives way to sentinels or cluster nodes), with addresses
// a client can dial.
func (r Redis) check(p *problems, daemon bool) {
	sentinel := len(r.Sentinel.Addrs) > 0 || r.Sentinel.Master != ""
	cluster := len(r.Cluster.Addrs) > 0
	single := r.Addr != EmbeddedRedis && r.Addr != ""
	switch {
	case r.Addr == "" && !sentinel && !cluster:
		p.add("redis.addr", "required: %q, host:port, or configure redis.sentinel or redis.cluster", EmbeddedRedis)
	case single:
		checkDialAddr(p, "redis.addr", r.Addr)
	case !sentinel && !cluster && r.EmbeddedListen != "":
		checkHostPort(p, "redis.embedded_listen", r.EmbeddedListen)
	}
	if single && sentinel {
		p.add("redis.addr", "%q and redis.sentinel exclude each other: with Sentinel, syncd asks the sentinels where the master is; remove redis.addr (or SYNCD_REDIS_ADDR)", r.Addr)
	}
	if single && cluster {
		p.add("redis.addr", "%q and redis.cluster exclude each other: list the cluster nodes in redis.cluster.addrs only; remove redis.addr (or SYNCD_REDIS_ADDR)", r.Addr)
	}
	if sentinel && cluster {
		p.add("redis.sentinel", "redis.sentinel and redis.cluster exclude each other: Sentinel watches one master with replicas, a Cluster shards across masters; configure the one you run")
	}
	if sentinel {
		if r.Sentinel.Master == "" {
			p.add("redis.sentinel.master", "required: the name the sentinels monitor (the <name> of `sentinel monitor <name> host port quorum`)")
		}
		if len(r.Sentinel.Addrs) == 0 {
			p.add("redis.sentinel.addrs", "required: list the sentinels as host:port (usually three, port 26379)")
		}
		checkDialAddrs(p, "redis.sentinel.addrs", r.Sentinel.Addrs)
	}
	if cluster {
		checkDialAddrs(p, "redis.cluster.addrs", r.Cluster.Addrs)
		if r.DB != 0 {
			p.add("redis.db", "%d: a Redis Cluster has only database 0", r.DB)
		}
	}
	if r.DB < 0 {
		p.add("redis.db", "%d: must not be negative", r.DB)
	}
	if daemon && r.Password == "" && r.PasswordFile != "" {
		checkFile(p, "redis.password_file", r.PasswordFile)
	}
	if daemon && r.Sentinel.Password == "" && r.Sentinel.PasswordFile != "" {
		checkFile(p, "redis.sentinel.password_file", r.Sentinel.PasswordFile)
	}
	if r.TLSCAFile != "" {
		checkFile(p, "redis.tls_ca_file", r.TLSCAFile)
	}
}

// checkDialAddrs checks a list of addresses to connect to, each once.
func checkDialAddrs(p *problems, key string, addrs []string) {
	seen := map[string]bool{}
	for i, a := range addrs {
		k := fmt.Sprintf("%s[%d]", key, i)
		checkDialAddr(p, k, a)
		if seen[a] {
			p.add(k, "%q is listed twice", a)
		}
		seen[a] = true
	}
}

// checkDialAddr requires host:port with a host and a port from 1 to 65535:
// an address to connect to, not to listen on.
func checkDialAddr(p *problems, key, v string) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		p.add(key, "%q is not host:port", v)
		return
	}
	n, err := strconv.Atoi(port)
	switch {
	case host == "":
		p.add(key, "%q: a host is needed", v)
	case err != nil || n < 1 || n > 65535:
		p.add(key, "%q: port %q is not a number from 1 to 65535", v, port)
	}
}

func checkHTTPURL(p *problems, key, v string) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(key, "%q is not an http(s) URL", v)
	}
}

func checkHostPort(p *problems, key, v string) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		p.add(key, "%q is not host:port", v)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		p.add(key, "%q: port %q is not a number from 0 to 65535", v, port)
	}
	_ = host // "" means every interface
}

func checkRange(p *problems, key string, v, lo, hi int) {
	if v < lo || v > hi {
		p.add(key, "%d: want %d to %d", v, lo, hi)
	}
}

func checkOneOf(p *problems, key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	p.add(key, "%q: want %s", v, list)
}

// checkFile requires a readable regular file (its content is read later).
func checkFile(p *problems, key, path string) {
	st, err := os.Stat(path)
	switch {
	case os.IsNotExist(err):
		p.add(key, "%s does not exist", path)
	case err != nil:
		p.add(key, "%s: %v", path, unwrapPathError(err))
	case st.IsDir():
		p.add(key, "%s is a directory, not a file", path)
	}
}

// checkPEMFile requires a file holding at least one PEM certificate.
func checkPEMFile(p *problems, key, path string) {
	n := len(p.list)
	checkFile(p, key, path)
	if len(p.list) > n {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		p.add(key, "%s: %v", path, unwrapPathError(err))
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		p.add(key, "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)
	}
}

// warnings are findings that do not stop syncd but must be seen.
func (c *Config) warnings(use Use) []string {
	var w []string
	if use == ForDev {
		return nil
	}
	if c.Cloud.InsecureSkipVerify {
		w = append(w, "cloud.insecure_skip_verify is true: the cloud's TLS certificate is NOT verified, so anyone on the network path can read the token and alter images; use cloud.ca_file for a private CA instead")
	}
	if u, err := url.Parse(c.Cloud.AuthURL); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		w = append(w, fmt.Sprintf("cloud.auth_url %s is plain http: the token crosses the network unencrypted", c.Cloud.AuthURL))
	}
	return w
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
