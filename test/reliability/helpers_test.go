// Package reliability holds imagesync's reliability, bad-input and load
// tests (issue 7): they drive whole daemons (in-process or as syncd child
// processes) against the in-process sandbox cloud through
// internal/daemon/daemontest, and assert what a person would see.
//
// Tests on a real Redis start a redis-server of their own
// (internal/redistest), never touching one they did not start.
package reliability

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/jobs"
)

// observed is a logger that writes warnings to the test log and records
// every entry (debug and up) for assertions.
func observed(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	tl := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Core()
	return zap.New(zapcore.NewTee(core, tl)), logs
}

// taskFor returns the task (of typ, "" any) whose payload names relPath.
func taskFor(tasks []*asynq.TaskInfo, typ, relPath string) *asynq.TaskInfo {
	for _, ti := range tasks {
		if typ != "" && ti.Type != typ {
			continue
		}
		var ref jobs.ImageRef
		if json.Unmarshal(ti.Payload, &ref) == nil && ref.RelPath == relPath {
			return ti
		}
	}
	return nil
}

// requireContainsAll fails unless s contains every part.
func requireContainsAll(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("message %q\n  does not contain %q", s, p)
		}
	}
}

var _ = sync.Mutex{}
var _ = daemontest.StateArchived
