package watch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// deadline is generous: tests wait on conditions, so a slow machine only
// makes them slower, not flaky.
const deadline = 20 * time.Second

// harness runs a Watcher and records every event it sends.
type harness struct {
	t      *testing.T
	w      *Watcher
	cancel context.CancelFunc
	runErr chan error

	mu     sync.Mutex
	events []stamped
	closed chan struct{} // Events channel closed
}

type stamped struct {
	at time.Time
	ev Event
}

// opts returns test options for one root: short settle, no periodic rescan.
func opts(t *testing.T, dir string) Options {
	return Options{
		Roots:  []Root{{Dir: dir}},
		Settle: 150 * time.Millisecond,
		Rescan: -1,
		Poll:   100 * time.Millisecond,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)),
	}
}

func start(t *testing.T, o Options, setup ...func(*Watcher)) *harness {
	t.Helper()
	w, err := New(o)
	require.NoError(t, err)
	for _, f := range setup {
		f(w)
	}
	return run(t, w)
}

func run(t *testing.T, w *Watcher) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, w: w, cancel: cancel, runErr: make(chan error, 1), closed: make(chan struct{})}
	go func() { h.runErr <- w.Run(ctx) }()
	go func() {
		defer close(h.closed)
		for ev := range w.Events() {
			h.mu.Lock()
			h.events = append(h.events, stamped{time.Now(), ev})
			h.mu.Unlock()
		}
	}()
	t.Cleanup(h.stop)
	return h
}

// stop cancels Run and waits for it and the Events channel to finish.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.runErr:
		require.NoError(h.t, err)
		h.runErr <- err // let a second stop see it too
	case <-time.After(deadline):
		h.t.Fatal("Run did not return after cancel")
	}
	select {
	case <-h.closed:
	case <-time.After(deadline):
		h.t.Fatal("Events channel not closed after Run returned")
	}
}

func (h *harness) all() []stamped {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]stamped(nil), h.events...)
}

// waitFor polls until cond holds over the events seen so far.
func (h *harness) waitFor(what string, cond func([]stamped) bool) []stamped {
	h.t.Helper()
	end := time.Now().Add(deadline)
	for {
		evs := h.all()
		if cond(evs) {
			return evs
		}
		if time.Now().After(end) {
			h.t.Fatalf("timed out waiting for %s; events:\n%s", what, dump(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dump(evs []stamped) string {
	s := ""
	for _, e := range evs {
		s += fmt.Sprintf("  %s %T %+v\n", e.at.Format("15:04:05.000"), e.ev, e.ev)
	}
	return s
}

// waitScans waits until n full scans (RescanDone) have been reported.
func (h *harness) waitScans(n int) []stamped {
	h.t.Helper()
	return h.waitFor(fmt.Sprintf("%d scans", n), func(evs []stamped) bool { return len(only[RescanDone](evs)) >= n })
}

// rescan forces a rescan and waits until its RescanDone events arrive. Call
// it only when no other scan can be in flight (periodic rescans off, initial
// scan delivered); the events it returns include those of the rescan.
func (h *harness) rescan(emitAll bool) []stamped {
	h.t.Helper()
	before := len(only[RescanDone](h.all()))
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	require.NoError(h.t, h.w.ForceRescan(ctx, emitAll))
	return h.waitFor("forced rescan delivered", func(evs []stamped) bool {
		return len(only[RescanDone](evs)) >= before+len(h.w.roots)
	})
}

func only[T Event](evs []stamped) []T {
	var out []T
	for _, e := range evs {
		if v, ok := e.ev.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func readyFor(evs []stamped, rel string) []ImageReady {
	var out []ImageReady
	for _, r := range only[ImageReady](evs) {
		if r.RelPath == rel {
			out = append(out, r)
		}
	}
	return out
}

func hasReady(rel string) func([]stamped) bool {
	return func(evs []stamped) bool { return len(readyFor(evs, rel)) > 0 }
}

func readyPaths(evs []stamped) []string {
	var out []string
	for _, r := range only[ImageReady](evs) {
		out = append(out, r.RelPath)
	}
	return out
}

func write(t *testing.T, path string, data string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(data), 0o644))
}

// fastTempDir is a temporary directory on tmpfs when the machine has one.
// Creating a file on a journaled disk can cost a millisecond in a VM, which
// would make the 10,000-file test crawl; the watcher itself behaves the same
// (inotify works on tmpfs).
func fastTempDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "watchtest-"); err == nil {
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
