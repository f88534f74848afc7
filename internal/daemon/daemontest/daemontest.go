// Package daemontest drives a whole imagesync installation from tests outside
// the daemon package: an in-process sandbox cloud, a daemon configuration,
// the daemon itself (in-process, or the syncd binary as a child process that
// can be SIGKILLed), and the views a test asserts on: registered images,
// sandbox counters and the asynq tasks in the daemon's Redis.
package daemontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.yaml.in/yaml/v3"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/daemon"
	"github.com/imagesync/imagesync/internal/hashmap"
	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/redisconn"
	"github.com/imagesync/imagesync/internal/redistest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// StartCloud runs an in-process sandbox cloud (users Alice and Bob unless
// cfg names others) until the test ends.
func StartCloud(t testing.TB, cfg sandbox.Config) *sandboxtest.Cloud {
	t.Helper()
	return sandboxtest.Start(t, cfg)
}

// Redis returns a real Redis of this test's own (internal/redistest) for a
// test daemon.
func Redis(t testing.TB) config.Redis {
	t.Helper()
	s := redistest.Start(t)
	return config.Redis{Addr: s.Addr, DB: s.DB}
}

// EmbeddedRedis selects the daemon's in-process Redis, on a free port.
func EmbeddedRedis() config.Redis {
	return config.Redis{Addr: config.EmbeddedRedis, EmbeddedListen: "127.0.0.1:0"}
}

// Config is a daemon configuration watching dir (uploaded to container
// "images", property OSFAMILY=linux) against cloud as cloud.User, with short
// settle and rescan intervals and an ephemeral metrics port.
func Config(t testing.TB, cloud *sandboxtest.Cloud, rc config.Redis, dir string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Node = "test-node"
	cfg.Cloud.AuthURL = cloud.AuthURL
	cfg.Cloud.Token = cloud.User.Token
	cfg.Cloud.Timeout = config.Duration(30 * time.Second)
	cfg.Redis = rc
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Settle = config.Duration(300 * time.Millisecond)
	cfg.Rescan = config.Duration(2 * time.Second)
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Upload.Blocks = 4
	cfg.Log = config.Log{Level: "info", Format: "json"}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Watch = []config.Watch{{Dir: dir, Container: "images", Defaults: map[string]any{"properties": map[string]any{"OSFAMILY": "linux"}}}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// Daemon is a daemon running in this process.
type Daemon struct {
	Info   daemon.Info
	Config *config.Config
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Run starts daemon.Run with cfg and stops it when the test ends (failing
// the test if it returned an error or did not stop within 30s). A nil log
// logs warnings and errors to the test log.
func Run(t testing.TB, cfg *config.Config, log *zap.Logger) *Daemon {
	t.Helper()
	if log == nil {
		log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{Config: cfg, cancel: cancel, done: make(chan struct{})}
	ready := make(chan daemon.Info, 1)
	go func() {
		defer close(d.done)
		d.err = daemon.Run(ctx, daemon.Options{Config: cfg, Logger: log, ShutdownTimeout: time.Second, Ready: func(i daemon.Info) { ready <- i }})
	}()
	t.Cleanup(func() {
		if err := d.Stop(30 * time.Second); err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	select {
	case d.Info = <-ready:
		return d
	case <-d.done:
		t.Fatalf("daemon exited before it was ready: %v", d.err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready after 30s")
	}
	return d
}

// Running reports whether Run has not returned.
func (d *Daemon) Running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Err is what Run returned (nil while it runs).
func (d *Daemon) Err() error {
	if d.Running() {
		return nil
	}
	return d.err
}

// Stop cancels the daemon and waits up to timeout for Run to return.
func (d *Daemon) Stop(timeout time.Duration) error {
	d.cancel()
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		return fmt.Errorf("daemon did not stop within %s", timeout)
	}
}

// Redis opens a client on the daemon's Redis (closed at test end), which
// must be the embedded one or a single server; Client serves every mode.
func (d *Daemon) Redis(t testing.TB) *redis.Client {
	t.Helper()
	switch m := d.Config.Redis.Mode(); m {
	case config.RedisModeEmbedded, config.RedisModeSingle:
	default:
		t.Fatalf("daemontest: Redis is for one server; the daemon uses %s: use Client", m)
	}
	rdb := redis.NewClient(&redis.Options{Addr: d.Info.RedisAddr, DB: d.Config.Redis.DB})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Client opens a client on the daemon's Redis however it reaches it (one
// server, Sentinel, Cluster), closed at test end.
func (d *Daemon) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	rc := d.Config.Redis
	if rc.Mode() == config.RedisModeEmbedded {
		rc.EmbeddedListen = d.Info.RedisAddr
	}
	rdb, err := redisconn.NewClient(rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Inspector is an asynq inspector on the daemon's Redis.
func (d *Daemon) Inspector(t testing.TB) *asynq.Inspector {
	t.Helper()
	return asynq.NewInspectorFromRedisClient(d.Client(t))
}

// Task states Tasks can list.
const (
	StateActive    = "active"
	StatePending   = "pending"
	StateScheduled = "scheduled"
	StateRetry     = "retry"
	StateArchived  = "archived"
	StateCompleted = "completed"
)

// Tasks lists the tasks in state (one of the State constants) across every
// queue.
func Tasks(t testing.TB, insp *asynq.Inspector, state string) []*asynq.TaskInfo {
	t.Helper()
	queues, err := insp.Queues()
	if err != nil {
		t.Fatalf("list queues: %v", err)
	}
	var out []*asynq.TaskInfo
	for _, q := range queues {
		var list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)
		switch state {
		case StateActive:
			list = insp.ListActiveTasks
		case StatePending:
			list = insp.ListPendingTasks
		case StateScheduled:
			list = insp.ListScheduledTasks
		case StateRetry:
			list = insp.ListRetryTasks
		case StateArchived:
			list = insp.ListArchivedTasks
		case StateCompleted:
			list = insp.ListCompletedTasks
		default:
			t.Fatalf("unknown task state %q", state)
		}
		for page := 1; ; page++ {
			ts, err := list(q, asynq.PageSize(1000), asynq.Page(page))
			if err != nil {
				t.Fatalf("list %s tasks of %s: %v", state, q, err)
			}
			out = append(out, ts...)
			if len(ts) < 1000 {
				break
			}
		}
	}
	return out
}

// AllTasks lists the tasks of every state.
func AllTasks(t testing.TB, insp *asynq.Inspector) []*asynq.TaskInfo {
	t.Helper()
	var out []*asynq.TaskInfo
	for _, s := range []string{StateActive, StatePending, StateScheduled, StateRetry, StateArchived, StateCompleted} {
		out = append(out, Tasks(t, insp, s)...)
	}
	return out
}

// Image is a registered image as Plankton lists it.
type Image struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Checksum   string            `json:"checksum"`
	Location   string            `json:"location"`
	Size       int64             `json:"size"`
	Status     string            `json:"status"`
	IsPublic   bool              `json:"is_public"`
	DiskFormat string            `json:"disk_format"`
	Container  string            `json:"container_format"`
	Properties map[string]string `json:"properties"`
}

// Images lists the images cloud.User owns or may see.
func Images(t testing.TB, cloud *sandboxtest.Cloud) []Image {
	t.Helper()
	var body struct {
		Images []Image `json:"images"`
	}
	getJSON(t, cloud.ImageURL()+"/v1.0/images/detail", cloud.User.Token, &body)
	return body.Images
}

// ImageByName returns the image called name, or nil.
func ImageByName(imgs []Image, name string) *Image {
	for i := range imgs {
		if imgs[i].Name == name {
			return &imgs[i]
		}
	}
	return nil
}

// Stats reads the sandbox's GET /_sandbox/stats counters.
func Stats(t testing.TB, cloud *sandboxtest.Cloud) sandbox.Stats {
	t.Helper()
	var st sandbox.Stats
	getJSON(t, cloud.URL+"/_sandbox/stats", "", &st)
	return st
}

func getJSON(t testing.TB, url, token string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}

// ObjectHash is the X-Object-Hash of a location ("pithos://…", "/c/o") as
// the cloud stores it now, "" when there is no such object.
func ObjectHash(t testing.TB, cloud *sandboxtest.Cloud, loc string) string {
	t.Helper()
	l, err := location.Parse(loc)
	if err != nil {
		t.Fatalf("location %q: %v", loc, err)
	}
	acct := l.Account
	if acct == "" {
		acct = cloud.User.UUID
	}
	u := cloud.PithosURL() + "/" + acct + "/" + l.Container + "/" + location.EscapePath(l.Object)
	req, _ := http.NewRequest(http.MethodHead, u, nil)
	req.Header.Set("X-Auth-Token", cloud.User.Token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("HEAD %s: %v", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s: %s", u, resp.Status)
	}
	return resp.Header.Get("X-Object-Hash")
}

// FileHash is the Pithos Merkle hash of a local file's content with the
// given block size (sandbox default: 4 MiB).
func FileHash(t testing.TB, path string, blockSize int) string {
	t.Helper()
	if blockSize <= 0 {
		blockSize = hashmap.DefaultBlockSize
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hashes []string
	buf := make([]byte, blockSize)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			hashes = append(hashes, hashmap.BlockHash(buf[:n]))
		}
		if err != nil {
			break
		}
	}
	if len(hashes) == 0 {
		hashes = []string{hashmap.BlockHash(nil)}
	}
	root, err := hashmap.MerkleRoot(hashes)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// HalfRegistered lists the registered images that are not consistent: whose
// checksum differs from their object's current hash, or whose object is gone.
func HalfRegistered(t testing.TB, cloud *sandboxtest.Cloud) []string {
	t.Helper()
	var bad []string
	for _, im := range Images(t, cloud) {
		h := ObjectHash(t, cloud, im.Location)
		if h != im.Checksum {
			bad = append(bad, fmt.Sprintf("%s (%s): checksum %s, object hash %q", im.Name, im.Location, im.Checksum, h))
		}
	}
	return bad
}

// Eventually polls cond every 100ms until it holds, failing the test after
// timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Wait polls cond every 50ms until it holds (true) or timeout passes (false).
func Wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WriteRandom writes size random bytes to path (creating directories).
func WriteRandom(t testing.TB, path string, size int) {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	WriteFile(t, path, b)
}

// WriteFile writes content to path (creating directories) atomically
// enough for the watcher: the file appears with its final size.
func WriteFile(t testing.TB, path string, content []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// WriteConfig writes cfg as syncd's YAML configuration (mode 0600).
func WriteConfig(t testing.TB, cfg *config.Config, path string) {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// BuildSyncd builds cmd/syncd once per test binary and returns its path.
func BuildSyncd(t testing.TB) string {
	t.Helper()
	return filepath.Join(build(t), "syncd")
}

// BuildSyncctl builds cmd/syncctl once per test binary and returns its path.
func BuildSyncctl(t testing.TB) string {
	t.Helper()
	return filepath.Join(build(t), "syncctl")
}

// build builds syncd and syncctl (one go build) into a directory others
// may read (StartSyncdAs).
func build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "daemontest-bin-")
		if buildErr != nil {
			return
		}
		if buildErr = os.Chmod(buildDir, 0o755); buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		modRoot := filepath.Join(filepath.Dir(file), "..", "..", "..")
		cmd := exec.Command("go", "build", "-o", buildDir+string(filepath.Separator), "./cmd/syncd", "./cmd/syncctl")
		cmd.Dir = modRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/syncd ./cmd/syncctl: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// Proc is syncd running as a child process.
type Proc struct {
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
	err     error
}

// StartSyncd runs bin --config cfgPath, appending its stderr (the JSON log)
// to logPath. The process is killed when the test ends.
func StartSyncd(t testing.TB, bin, cfgPath, logPath string) *Proc {
	t.Helper()
	return startSyncd(t, bin, cfgPath, logPath, nil)
}

// StartSyncdAs is StartSyncd running the child as another user (the test
// must be root): cfgPath, the state dir and the watch roots must be usable
// by that user.
func StartSyncdAs(t testing.TB, bin, cfgPath, logPath string, uid, gid uint32) *Proc {
	t.Helper()
	return startSyncd(t, bin, cfgPath, logPath, &syscall.Credential{Uid: uid, Gid: gid})
}

// Bind is a bind mount for StartSyncdInNamespace: Source appears at Target.
type Bind struct{ Source, Target string }

// StartSyncdInNamespace is StartSyncd in a private mount namespace (unshare
// -m --propagation private) where each bind is mounted before syncd starts:
// several children then see different files at one path, as syncd on
// separate hosts would. Files the test writes under a Source show at its
// Target in that child only. It needs root and util-linux's unshare; the test
// is skipped without them.
func StartSyncdInNamespace(t testing.TB, bin, cfgPath, logPath string, binds ...Bind) *Proc {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare(1) to give each syncd its own mount namespace")
	}
	var script strings.Builder
	args := []string{"-m", "--propagation", "private", "--", "/bin/sh", "-c", "", "syncd"}
	for i, b := range binds {
		// Positional parameters keep the paths out of the shell's parsing.
		fmt.Fprintf(&script, `mount --bind "$%d" "$%d" && `, 2*i+1, 2*i+2)
		args = append(args, b.Source, b.Target)
	}
	script.WriteString(`exec "$0" --config "$SYNCD_TEST_CONFIG"`)
	args[6] = script.String()
	args[7] = bin
	return startCmd(t, unshare, args, logPath, []string{"SYNCD_TEST_CONFIG=" + cfgPath}, nil)
}

func startSyncd(t testing.TB, bin, cfgPath, logPath string, cred *syscall.Credential) *Proc {
	t.Helper()
	return startCmd(t, bin, []string{"--config", cfgPath}, logPath, nil, cred)
}

func startCmd(t testing.TB, bin string, args []string, logPath string, env []string, cred *syscall.Credential) *Proc {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(append(os.Environ(), "SYNCD_TOKEN=", "SYNCD_REDIS_ADDR="), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start syncd: %v", err)
	}
	p := &Proc{Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.Kill(t) })
	return p
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Running reports whether the child has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the child to be gone.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	if !p.Running() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("syncd pid %d survived SIGKILL for 10s", p.Pid())
	}
}

// Terminate sends SIGTERM and waits up to timeout for a clean exit.
func (p *Proc) Terminate(t testing.TB, timeout time.Duration) error {
	t.Helper()
	if !p.Running() {
		return p.err
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill(t)
		return fmt.Errorf("syncd did not stop within %s of SIGTERM", timeout)
	}
}

// VmHWM is the child's peak resident set size in bytes (Linux), 0 when it
// cannot be read.
func (p *Proc) VmHWM() int64 { return VmHWM(p.Pid()) }

// VmHWM reads a process's peak RSS from /proc/PID/status.
func VmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// Log returns what the child has logged so far.
func (p *Proc) Log(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WaitRunning waits for the child's "syncd running" log line.
func (p *Proc) WaitRunning(t testing.TB, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, "syncd to log \"syncd running\"", func() bool {
		if !p.Running() {
			t.Fatalf("syncd exited: %v\n%s", p.err, p.Log(t))
		}
		return bytes.Contains(p.Log(t), []byte(`"syncd running"`))
	})
}

// Holds lets a test stop chosen requests on their way into (or out of) a
// sandbox cloud, to land a crash or a fault at an exact point of the flow.
type Holds struct {
	mu    sync.Mutex
	rules []*Hold
}

// Hold is one rule: the matching requests wait until Release.
type Hold struct {
	match       func(*http.Request) bool
	after       bool
	arrived     chan struct{}
	arrivedOnce sync.Once
	released    chan struct{}
	releaseOnce sync.Once
	count       int
	waiting     atomic.Int32
}

// StartHoldableCloud is StartCloud with a Holds in front of the sandbox.
func StartHoldableCloud(t testing.TB, cfg sandbox.Config) (*sandboxtest.Cloud, *Holds) {
	t.Helper()
	h := &Holds{}
	cloud := sandboxtest.StartWrapped(t, cfg, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, next) })
	})
	// Cleanups run last-in first-out: held requests go before the server closes.
	t.Cleanup(h.ReleaseAll)
	return cloud, h
}

// Before holds matching requests before the sandbox sees them. A held
// request whose client goes away is dropped unserved.
func (h *Holds) Before(match func(*http.Request) bool) *Hold { return h.add(match, false) }

// After lets the sandbox apply matching requests and holds their answers:
// the change is made but the client has not heard of it.
func (h *Holds) After(match func(*http.Request) bool) *Hold { return h.add(match, true) }

func (h *Holds) add(match func(*http.Request) bool, after bool) *Hold {
	x := &Hold{match: match, after: after, arrived: make(chan struct{}), released: make(chan struct{})}
	h.mu.Lock()
	h.rules = append(h.rules, x)
	h.mu.Unlock()
	return x
}

// Waiting is the number of requests held now by any hold.
func (h *Holds) Waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, x := range h.rules {
		n += x.Waiting()
	}
	return n
}

// ReleaseAll releases every hold.
func (h *Holds) ReleaseAll() {
	h.mu.Lock()
	rules := append([]*Hold(nil), h.rules...)
	h.mu.Unlock()
	for _, x := range rules {
		x.Release()
	}
}

func (h *Holds) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	var hold *Hold
	h.mu.Lock()
	for _, x := range h.rules {
		select {
		case <-x.released:
			continue
		default:
		}
		if x.match(r) {
			x.count++
			hold = x
			break
		}
	}
	h.mu.Unlock()
	if hold == nil {
		next.ServeHTTP(w, r)
		return
	}
	hold.waiting.Add(1)
	defer hold.waiting.Add(-1)
	// net/http notices a client going away (and cancels r.Context) only
	// once the request body has been read: read it now.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !hold.after {
		hold.arrivedOnce.Do(func() { close(hold.arrived) })
		select {
		case <-hold.released:
			next.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
		return
	}
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	hold.arrivedOnce.Do(func() { close(hold.arrived) })
	select {
	case <-hold.released:
	case <-r.Context().Done():
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// Arrived is closed when the first matching request is held.
func (x *Hold) Arrived() <-chan struct{} { return x.arrived }

// Waiting is the number of requests held now. After killing a client, wait
// for it to drop to 0 before Release, or the dead client's requests may
// still be served.
func (x *Hold) Waiting() int { return int(x.waiting.Load()) }

// Release lets the held requests (and all later ones) through.
func (x *Hold) Release() { x.releaseOnce.Do(func() { close(x.released) }) }

// Matchers for Holds.

// IsBlockUpload matches a Pithos block upload (POST <container>?update).
func IsBlockUpload(r *http.Request) bool {
	_, ok := r.URL.Query()["update"]
	return r.Method == http.MethodPost && ok && strings.HasPrefix(r.URL.Path, "/object-store/")
}

// IsHashmapPut matches a Pithos hashmap PUT (PUT <object>?hashmap).
func IsHashmapPut(r *http.Request) bool {
	_, ok := r.URL.Query()["hashmap"]
	return r.Method == http.MethodPut && ok && strings.HasPrefix(r.URL.Path, "/object-store/")
}

// IsMetafilePut matches the upload of an <object>.meta.
func IsMetafilePut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/object-store/") && strings.HasSuffix(r.URL.Path, ".meta")
}

// IsRegister matches Plankton's POST /images/ (a registration).
func IsRegister(r *http.Request) bool {
	p := strings.TrimSuffix(r.URL.Path, "/")
	return r.Method == http.MethodPost && (p == "/image/v1.0/images" || p == "/image/v1/images")
}

// IsMembersPut matches Plankton's PUT /images/<id>/members (publishing).
func IsMembersPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/image/") && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/members")
}

// Members lists an image's members (user uuids) as Plankton reports them.
func Members(t testing.TB, cloud *sandboxtest.Cloud, imageID string) []string {
	t.Helper()
	var body struct {
		Members []struct {
			MemberID string `json:"member_id"`
		} `json:"members"`
	}
	getJSON(t, cloud.ImageURL()+"/v1.0/images/"+imageID+"/members", cloud.User.Token, &body)
	var out []string
	for _, m := range body.Members {
		out = append(out, m.MemberID)
	}
	return out
}
