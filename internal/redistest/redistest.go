// Package redistest gives tests a Redis of their own: a redis-server child
// process on a free loopback port, with nothing persisted, killed when the
// test ends (or when the test binary dies). A test never touches a Redis it
// did not start: a developer's 127.0.0.1:6379 may hold real data.
//
// To run the tests against a given Redis on purpose, set
// IMAGESYNC_TEST_REDIS=host:port/db (e.g. 127.0.0.1:6379/9): Start then
// returns that database, FLUSHED before and after each test, and packages
// must run one at a time (go test -p 1) since they share it. Tests that kill
// or restart their Redis (StartProcess) always start their own.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvRedis names a Redis the tests may use (and flush) on purpose.
const EnvRedis = "IMAGESYNC_TEST_REDIS"

// Server is one Redis a test uses.
type Server struct {
	// Addr is host:port.
	Addr string
	// DB is the database to use (non-zero only for IMAGESYNC_TEST_REDIS).
	DB int

	t        testing.TB
	external bool
	port     int
	conf     string // a config file to start with (sentinels)
	args     []string
	dir      string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Start returns a Redis for this test: its own redis-server, or the
// database named by IMAGESYNC_TEST_REDIS (flushed now and at the end).
func Start(t testing.TB) *Server {
	t.Helper()
	if v := os.Getenv(EnvRedis); v != "" {
		return external(t, v)
	}
	return StartProcess(t)
}

// StartProcess always starts a redis-server child on a free port; extra
// arguments are passed to it (e.g. "--replicaof", host, port).
func StartProcess(t testing.TB, args ...string) *Server {
	t.Helper()
	return startProcess(t, &Server{t: t, args: args, dir: t.TempDir()})
}

func startProcess(t testing.TB, s *Server) *Server {
	t.Helper()
	s.port = FreePort(t)
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
	// Another process may take the port between FreePort and the bind.
	for attempt := 0; !s.start(attempt < 4); attempt++ {
		s.port = FreePort(t)
		s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
	}
	t.Cleanup(s.Kill)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(s.dir, "redis.log")); err == nil {
				t.Logf("redis-server %s log (last 4 KiB):\n%s", s.Addr, tail(b, 4096))
			}
		}
	})
	return s
}

// Binary returns the redis-server to run, or an error saying how to get one.
func Binary() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found in PATH: install it (Debian/Ubuntu: apt-get install redis-server; .ci/run does) or set %s=host:port/db to use a Redis you choose", EnvRedis)
	}
	return p, nil
}

// start runs the server and waits until it answers. When it exits at once
// and mayRetry is set, start reports false so the caller can pick another
// port; otherwise that fails the test.
func (s *Server) start(mayRetry bool) bool {
	s.t.Helper()
	bin, err := Binary()
	if err != nil {
		s.t.Fatal(err)
	}
	var args []string
	if s.conf != "" {
		// redis-server takes its config file first.
		args = append(args, s.conf)
	}
	args = append(args,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"))
	args = append(args, s.args...)
	cmd := exec.Command(bin, args...)
	// The child dies with the test binary, even on a panic or a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { _ = cmd.Wait(); close(done) }()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return true
		}
		select {
		case <-done:
			if mayRetry {
				return false
			}
			b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server on %s exited at start:\n%s", s.Addr, tail(b, 2048))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer within 10s: %v", s.Addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill SIGKILLs the server (a crash: nothing is saved). Idempotent.
func (s *Server) Kill() {
	if s.external || s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Restart starts the server again, empty, on the same port (after Kill).
func (s *Server) Restart() {
	s.t.Helper()
	if s.external {
		s.t.Fatal("redistest: cannot restart a Redis this test did not start")
	}
	s.Kill()
	s.start(false)
}

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// Client is a go-redis client for the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DB: s.DB})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func external(t testing.TB, v string) *Server {
	t.Helper()
	addr, dbs, _ := strings.Cut(v, "/")
	db := 0
	if dbs != "" {
		n, err := strconv.Atoi(dbs)
		if err != nil {
			t.Fatalf("%s=%q: want host:port/db", EnvRedis, v)
		}
		db = n
	}
	s := &Server{Addr: addr, DB: db, t: t, external: true}
	flush := func() {
		c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.FlushDB(ctx).Err(); err != nil {
			t.Fatalf("flush %s db %d (%s): %v", addr, db, EnvRedis, err)
		}
	}
	flush()
	t.Cleanup(flush)
	return s
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
