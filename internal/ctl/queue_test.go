package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/jobs"
)

// queueFixture holds a task in every state: a pending upload on this node's
// queue (which no worker serves here), an active upload reporting progress,
// a scheduled, a retrying and an archived registration, a completed publish,
// and a "flaky" registration archived until its flag flips.
type queueFixture struct {
	*env
	flaky   atomic.Bool
	ran     atomic.Int32 // runs of the flaky task
	release chan struct{}
}

const (
	idPending   = "upload:pending1"
	idActive    = "upload:active1"
	idScheduled = "register:sched1"
	idRetry     = "register:retry1"
	idArchived  = "register:archived1"
	idCompleted = "publish:done1"
	idFlaky     = "register:flaky1"
)

func newQueueFixture(t *testing.T, e *env) *queueFixture {
	f := &queueFixture{env: e, release: make(chan struct{})}
	ref := func(rel string) jobs.ImageRef {
		return jobs.ImageRef{Root: e.root, RelPath: rel, Container: "images", Object: rel}
	}
	enqueue := func(id, typ, queue string, payload any, opts ...asynq.Option) {
		t.Helper()
		b, err := json.Marshal(payload)
		require.NoError(t, err)
		_, err = e.client.Enqueue(asynq.NewTask(typ, b), append([]asynq.Option{asynq.TaskID(id), asynq.Queue(queue), asynq.MaxRetry(5)}, opts...)...)
		require.NoError(t, err)
	}
	up := func(rel string) jobs.UploadPayload {
		return jobs.UploadPayload{V: jobs.PayloadVersion, ImageRef: ref(rel), Size: 4096}
	}
	reg := func(rel string) jobs.RegisterPayload {
		return jobs.RegisterPayload{V: jobs.PayloadVersion, ImageRef: ref(rel), Reason: "upload"}
	}
	enqueue(idPending, jobs.TypeUpload, jobs.UploadQueue("n1"), up("pending.diskdump"))
	enqueue(idActive, jobs.TypeUpload, jobs.QueueSharedUpload, up("dir/active.diskdump"))
	enqueue(idScheduled, jobs.TypeRegister, jobs.QueueDefault, reg("sched.diskdump"), asynq.ProcessIn(time.Hour))
	enqueue(idRetry, jobs.TypeRegister, jobs.QueueDefault, reg("retry.diskdump"))
	enqueue(idArchived, jobs.TypeRegister, jobs.QueueDefault, reg("archived.diskdump"))
	enqueue(idCompleted, jobs.TypePublish, jobs.QueueDefault,
		jobs.PublishPayload{V: jobs.PayloadVersion, ImageRef: ref("done.diskdump"), ImageID: "img-1"}, asynq.Retention(time.Hour))
	enqueue(idFlaky, jobs.TypeRegister, jobs.QueueDefault, reg("flaky.diskdump"), asynq.Retention(time.Hour))

	handler := asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		switch id {
		case idActive:
			start := time.Now().Add(-10 * time.Second)
			p := jobs.Progress{Phase: "hashing", Path: "dir/active.diskdump", TotalBytes: 4 << 20, BytesHashed: 1 << 20, StartedAt: start, UpdatedAt: time.Now()}
			b, _ := json.Marshal(p)
			_, _ = task.ResultWriter().Write(b)
			select {
			case <-f.release:
			case <-ctx.Done():
			}
			return errors.New("interrupted by the test's end")
		case idRetry:
			return errors.New("503 from the object store (temporary)")
		case idArchived:
			// A careless server echoing the token must not leak it.
			return fmt.Errorf("metafile images/archived.diskdump.meta line 3: unknown disk format (server said: token %s rejected): %w", e.token, asynq.SkipRetry)
		case idCompleted:
			_, _ = task.ResultWriter().Write([]byte(`{"phase":"done","image_id":"img-1"}`))
			return nil
		case idFlaky:
			f.ran.Add(1)
			if !f.flaky.Load() {
				return fmt.Errorf("403 forbidden: fix the container ACL: %w", asynq.SkipRetry)
			}
			return nil
		}
		return fmt.Errorf("unexpected task %s", id)
	})
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{
		Concurrency:       8,
		Queues:            map[string]int{jobs.QueueDefault: 1, jobs.QueueSharedUpload: 1},
		RetryDelayFunc:    func(int, error, *asynq.Task) time.Duration { return time.Hour },
		LogLevel:          asynq.FatalLevel,
		ShutdownTimeout:   3 * time.Second,
		TaskCheckInterval: 20 * time.Millisecond,
	})
	require.NoError(t, srv.Start(handler))
	t.Cleanup(func() {
		close(f.release)
		srv.Shutdown()
	})
	want := map[string]asynq.TaskState{
		idPending: asynq.TaskStatePending, idActive: asynq.TaskStateActive, idScheduled: asynq.TaskStateScheduled,
		idRetry: asynq.TaskStateRetry, idArchived: asynq.TaskStateArchived, idCompleted: asynq.TaskStateCompleted,
		idFlaky: asynq.TaskStateArchived,
	}
	require.Eventually(t, func() bool {
		for id, st := range want {
			ti, err := findTask(e.insp, []string{jobs.QueueDefault, jobs.QueueSharedUpload, jobs.UploadQueue("n1")}, id)
			if err != nil || ti.State != st {
				return false
			}
			if id == idActive && len(ti.Result) == 0 {
				return false
			}
		}
		return true
	}, 20*time.Second, 50*time.Millisecond, "tasks did not reach their states")
	return f
}

func TestQueueCommands(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		f := newQueueFixture(t, e)

		t.Run("status json", func(t *testing.T) {
			code, out, errOut := e.run("status", "--json")
			require.Equal(t, 0, code, errOut)
			assert.NotContains(t, out, e.token)
			var raw map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &raw))
			assert.Equal(t, sorted("time", "redis", "node", "auth_paused", "down_nodes", "queues", "totals", "workers", "active", "failures", "skipped", "deploy_warnings", "quota_unreadable"), keys(t, raw))
			counts := sorted("pending", "active", "scheduled", "retry", "archived", "completed", "processed_today", "failed_today")
			assert.Equal(t, counts, keys(t, raw["totals"]))
			q0 := raw["queues"].([]any)[0]
			assert.Equal(t, sorted(append(counts, "queue", "paused", "latency_seconds")...), keys(t, q0))
			act := raw["active"].([]any)[0]
			assert.Equal(t, sorted("id", "queue", "type", "state", "path", "location", "retried", "max_retry", "last_error",
				"last_failed_at", "next_process_at", "completed_at", "orphaned", "progress",
				"phase", "unit", "done", "total", "fraction", "bytes_per_second", "elapsed_seconds", "stalled"), keys(t, act))
			w0 := raw["workers"].([]any)[0]
			assert.Equal(t, sorted("node", "host", "pid", "concurrency", "queues", "status", "started_at", "busy"), keys(t, w0))

			var doc StatusDoc
			require.NoError(t, json.Unmarshal([]byte(out), &doc))
			assert.Equal(t, "n1", doc.Node)
			assert.Empty(t, doc.AuthPaused)
			var names []string
			for _, q := range doc.Queues {
				names = append(names, q.Queue)
			}
			assert.Equal(t, []string{"default", "node:n1", "upload", "upload:n1"}, names)
			assert.Equal(t, Counts{Pending: 1, Active: 1, Scheduled: 1, Retry: 1, Archived: 2, Completed: 1,
				ProcessedToday: doc.Totals.ProcessedToday, FailedToday: doc.Totals.FailedToday}, doc.Totals)
			assert.GreaterOrEqual(t, doc.Totals.FailedToday, 3)
			require.Len(t, doc.Active, 1)
			a := doc.Active[0]
			assert.Equal(t, idActive, a.ID)
			assert.Equal(t, "hashing", a.Phase)
			assert.Equal(t, "bytes", a.Unit)
			require.NotNil(t, a.Fraction)
			assert.InDelta(t, 0.25, *a.Fraction, 1e-9)
			assert.InDelta(t, float64(1<<20)/10, a.BytesPerSecond, float64(1<<20)/10*0.05)
			assert.Equal(t, "images/dir/active.diskdump", strings.TrimPrefix(a.Path, e.dir+"/"))
			require.Len(t, doc.Workers, 1)
			// Busy lags: asynq writes it with its 5s heartbeat.
			assert.Equal(t, 8, doc.Workers[0].Concurrency)
			assert.Equal(t, []string{"default", "upload"}, doc.Workers[0].Queues)
			var failedIDs []string
			for _, ft := range doc.Failures {
				failedIDs = append(failedIDs, ft.ID)
			}
			assert.ElementsMatch(t, []string{idRetry, idArchived, idFlaky}, failedIDs)
			for _, ft := range doc.Failures {
				if ft.ID == idArchived {
					assert.Contains(t, ft.LastError, "[REDACTED]")
					assert.Contains(t, ft.LastError, "unknown disk format")
				}
			}
		})

		t.Run("status limits failures", func(t *testing.T) {
			var doc StatusDoc
			e.runJSON(&doc, "status", "--failures", "1")
			assert.Len(t, doc.Failures, 1)
		})

		t.Run("status table", func(t *testing.T) {
			code, out, errOut := e.run("status")
			require.Equal(t, 0, code, errOut)
			for _, s := range []string{"QUEUE", "upload:n1", "RUNNING", "hashing", "25%", "1.0 MiB / 4.0 MiB", "RECENT FAILURES",
				"unknown disk format", "failed permanently", "will retry", "workers:"} {
				assert.Contains(t, out, s)
			}
			assert.NotContains(t, out, e.token)
		})

		t.Run("status shows the auth pause", func(t *testing.T) {
			require.NoError(t, e.rdb.Set(context.Background(), jobs.AuthPausedKey, "401 Invalid token", 0).Err())
			defer e.rdb.Del(context.Background(), jobs.AuthPausedKey)
			var doc StatusDoc
			e.runJSON(&doc, "status")
			assert.Equal(t, "401 Invalid token", doc.AuthPaused)
			_, out, _ := e.run("status")
			assert.Contains(t, out, "QUEUES PAUSED")
			assert.Contains(t, out, "401 Invalid token")
		})

		t.Run("status watch", func(t *testing.T) {
			code, out, errOut := e.run("status", "--watch", "--iterations", "2", "--interval", "20ms", "--json")
			require.Equal(t, 0, code, errOut)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			require.Len(t, lines, 2)
			for _, l := range lines {
				var doc StatusDoc
				require.NoError(t, json.Unmarshal([]byte(l), &doc))
				assert.Len(t, doc.Active, 1)
			}
			code, out, _ = e.runTTY("status", "--watch", "--iterations", "2", "--interval", "20ms")
			require.Equal(t, 0, code)
			assert.Equal(t, 2, strings.Count(out, "\x1b[H\x1b[2J"), "a terminal's screen is redrawn")
			code, out, _ = e.run("status", "--watch", "--iterations", "2", "--interval", "20ms")
			require.Equal(t, 0, code)
			assert.NotContains(t, out, "\x1b", "a pipe gets plain snapshots")
		})

		t.Run("list every state", func(t *testing.T) {
			for _, tc := range []struct {
				state string
				ids   []string
			}{
				{"pending", []string{idPending}},
				{"active", []string{idActive}},
				{"scheduled", []string{idScheduled}},
				{"retry", []string{idRetry}},
				{"archived", []string{idArchived, idFlaky}},
				{"failed", []string{idArchived, idFlaky}},
				{"completed", []string{idCompleted}},
				{"done", []string{idCompleted}},
			} {
				var doc ListDoc
				e.runJSON(&doc, "list", tc.state)
				var ids []string
				for _, task := range doc.Tasks {
					ids = append(ids, task.ID)
				}
				assert.ElementsMatch(t, tc.ids, ids, tc.state)
				code, out, errOut := e.run("list", tc.state)
				require.Equal(t, 0, code, errOut)
				for _, id := range tc.ids {
					assert.Contains(t, out, id)
				}
				assert.NotContains(t, out, e.token)
			}
			var raw map[string]any
			e.runJSON(&raw, "list", "archived")
			assert.Equal(t, sorted("state", "queues", "tasks"), keys(t, raw))
			assert.Equal(t, "archived", raw["state"])
		})

		t.Run("list one queue and limit", func(t *testing.T) {
			var doc ListDoc
			e.runJSON(&doc, "list", "pending", "--queue", "default")
			assert.Empty(t, doc.Tasks)
			assert.Equal(t, []string{"default"}, doc.Queues)
			e.runJSON(&doc, "list", "pending", "--queue", "upload:n1")
			require.Len(t, doc.Tasks, 1)
			assert.Equal(t, "image:upload", doc.Tasks[0].Type)
			assert.Equal(t, "/images/pending.diskdump", doc.Tasks[0].Location)
			e.runJSON(&doc, "list", "archived", "--limit", "1")
			assert.Len(t, doc.Tasks, 1)
			code, _, errOut := e.run("list", "scheduled", "--queue", "nosuchqueue")
			assert.Equal(t, 2, code, "an unknown queue is a usage error")
			assert.Contains(t, errOut, `unknown queue "nosuchqueue"`)
		})

		t.Run("inspect", func(t *testing.T) {
			for id, st := range map[string]string{idPending: "pending", idActive: "active", idScheduled: "scheduled",
				idRetry: "retry", idArchived: "archived", idCompleted: "completed"} {
				var raw map[string]any
				e.runJSON(&raw, "inspect", id)
				assert.Equal(t, st, raw["state"], id)
				assert.Equal(t, sorted("id", "queue", "type", "state", "path", "location", "retried", "max_retry", "last_error",
					"last_failed_at", "next_process_at", "completed_at", "orphaned", "progress",
					"payload", "result", "timeout_seconds", "deadline", "retention_seconds"), keys(t, raw))
				assert.Contains(t, keys(t, raw["payload"]), "rel_path")
				code, out, errOut := e.run("inspect", id)
				require.Equal(t, 0, code, errOut)
				assert.Contains(t, out, st)
				assert.Contains(t, out, "payload:")
				assert.NotContains(t, out, e.token)
			}
			var d TaskDetail
			e.runJSON(&d, "inspect", idActive)
			require.NotNil(t, d.Progress)
			assert.Equal(t, int64(1<<20), d.Progress.BytesHashed)
			e.runJSON(&d, "inspect", idCompleted, "--queue", "default")
			require.NotNil(t, d.Progress)
			assert.Equal(t, "img-1", d.Progress.ImageID)
			assert.Equal(t, float64(3600), d.RetentionSeconds)
			e.runJSON(&d, "inspect", idArchived)
			assert.Contains(t, d.LastError, "[REDACTED]")
			assert.NotContains(t, d.LastError, e.token)

			code, _, errOut := e.run("inspect", "upload:nope")
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut, `no task "upload:nope"`)
			code, _, _ = e.run("inspect", idPending, "--queue", "default")
			assert.Equal(t, 1, code)
		})

		t.Run("retry a failed job", func(t *testing.T) {
			before := f.ran.Load()
			f.flaky.Store(true)
			var doc RetryDoc
			e.runJSON(&doc, "retry", idFlaky)
			require.Len(t, doc.Retried, 1)
			assert.Equal(t, RetriedTask{ID: idFlaky, Queue: "default", Type: jobs.TypeRegister, Path: e.root + "/flaky.diskdump", From: "archived"}, doc.Retried[0])
			assert.Empty(t, doc.Errors)
			require.Eventually(t, func() bool {
				ti, err := e.insp.GetTaskInfo("default", idFlaky)
				return err == nil && ti.State == asynq.TaskStateCompleted
			}, 15*time.Second, 50*time.Millisecond)
			assert.Equal(t, before+1, f.ran.Load())
		})

		t.Run("retry skips and reports", func(t *testing.T) {
			var raw map[string]any
			code, out, errOut := e.run("retry", idPending, idCompleted, "register:missing", "--json")
			assert.Equal(t, 1, code, errOut)
			require.NoError(t, json.Unmarshal([]byte(out), &raw))
			assert.Equal(t, sorted("retried", "skipped", "errors", "auth_paused"), keys(t, raw))
			var doc RetryDoc
			require.NoError(t, json.Unmarshal([]byte(out), &doc))
			assert.Empty(t, doc.Retried)
			require.Len(t, doc.Skipped, 2)
			assert.Equal(t, idPending, doc.Skipped[0].ID)
			assert.Contains(t, doc.Skipped[0].Reason, "already pending")
			assert.Contains(t, doc.Skipped[1].Reason, "resync")
			require.Len(t, doc.Errors, 1)
			assert.Equal(t, "register:missing", doc.Errors[0].ID)
			assert.Contains(t, errOut, "could not be retried")
		})

		t.Run("retry all", func(t *testing.T) {
			var doc RetryDoc
			e.runJSON(&doc, "retry", "--all", "--queue", "default")
			var ids []string
			for _, r := range doc.Retried {
				ids = append(ids, r.ID+"<"+r.From)
			}
			assert.ElementsMatch(t, []string{idArchived + "<archived", idRetry + "<retry"}, ids)
			require.Eventually(t, func() bool {
				ti, err := e.insp.GetTaskInfo("default", idArchived)
				return err == nil && ti.State == asynq.TaskStateArchived && ti.Retried == 0 && ti.LastFailedAt.After(time.Now().Add(-time.Minute))
			}, 15*time.Second, 50*time.Millisecond)
			code, out, _ := e.run("retry", "--all", "--queue", "upload:n1")
			assert.Equal(t, 0, code)
			assert.Contains(t, out, "Nothing to retry")
		})
	})
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t, "miniredis")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"list"}, 2, "list needs one STATE"},
		{[]string{"list", "sleeping"}, 2, `unknown state "sleeping"`},
		{[]string{"list", "pending", "--nope"}, 2, "unknown flag: --nope"},
		{[]string{"inspect"}, 2, "inspect needs one task ID"},
		{[]string{"retry"}, 2, "retry needs task IDs, or --all"},
		{[]string{"retry", "x", "--all"}, 2, "not both"},
		{[]string{"resync"}, 2, "at least one image PATH"},
		{[]string{"status", "extra"}, 2, "unknown command"},
		{[]string{"status", "--interval", "0s"}, 2, "--interval must be positive"},
		{[]string{"inspect", "nothing:here"}, 1, "no task"},
		{[]string{"--help"}, 0, ""},
		{[]string{"status"}, 0, ""},
	} {
		code, _, errOut := e.run(tc.args...)
		assert.Equal(t, tc.code, code, "%v: %s", tc.args, errOut)
		if tc.msg != "" {
			assert.Contains(t, errOut, tc.msg, tc.args)
		}
		if tc.code == 2 {
			assert.Contains(t, errOut, "--help' for usage", tc.args)
		}
	}
}

func TestUnreachableRedis(t *testing.T) {
	e := newEnv(t, "miniredis")
	e.be.addr = "127.0.0.1:1"
	e.writeConfig()
	code, out, errOut := e.run("status")
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "cannot reach Redis at 127.0.0.1:1: connect: connection refused")
	assert.Contains(t, errOut, "is that Redis running, and are redis.addr and its password right?")
	assert.Contains(t, errOut, "configuration: "+e.cfgPath)

	e.be.addr = "embedded"
	e.extra = ""
	e.writeConfig()
	// The embedded Redis is reached at embedded_listen; point it nowhere.
	code, _, errOut = runCtl(t, "--config", e.cfgPath, "list", "pending")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "is syncd running on this host?")

	code, _, errOut = runCtl(t, "--config", e.dir+"/missing.yaml", "status")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "missing.yaml")
}

func TestCompletion(t *testing.T) {
	code, out, errOut := runCtl(t, "completion", "bash")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "syncctl")
	code, out, _ = runCtl(t, "__complete", "list", "")
	require.Equal(t, 0, code)
	for _, s := range stateNames {
		assert.Contains(t, out, s)
	}
}

func TestCompletesTaskIDs(t *testing.T) {
	e := newEnv(t, "miniredis")
	newQueueFixture(t, e)
	code, out, errOut := e.run("__complete", "retry", "register:")
	require.Equal(t, 0, code, errOut)
	for _, id := range []string{idArchived, idRetry, idScheduled, idFlaky} {
		assert.Contains(t, out, id)
	}
	assert.NotContains(t, out, idPending)
	assert.NotContains(t, out, idCompleted)
	_, out, _ = e.run("__complete", "inspect", "upload:")
	assert.Contains(t, out, idPending)
	assert.Contains(t, out, idActive)
	assert.NotContains(t, out, idArchived)
}

// TestStatusShowsSkippedFiles: what the watchers could not use (here a
// symlink whose target is outside the roots) is listed by status, with the
// node, the link and its target, in the table and in --json.
func TestStatusShowsSkippedFiles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		reason := "symlink /srv/drop/evil.diskdump -> /etc/hostname not used: its target is outside every watch root (follow_symlinks: inside); move or copy the file into a watched folder"
		sk := jobs.NewSkipped(e.rdb, "build-2", time.Hour)
		require.NoError(t, sk.SetRoot(ctx, "/srv/drop", []jobs.SkippedFile{{Root: "/srv/drop", Path: "/srv/drop/evil.diskdump", Reason: reason, Since: time.Now()}}))
		require.NoError(t, jobs.NewSkipped(e.rdb, "build-1", 0).Add(ctx, jobs.SkippedFile{Root: "/srv/a", Path: "/srv/a/x.diskdump", Reason: "cannot read: permission denied"}))

		code, out, errOut := e.run("status")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "NOT USED")
		assert.Contains(t, out, "build-2  /srv/drop/evil.diskdump\n    "+reason)
		assert.Less(t, strings.Index(out, "build-1"), strings.Index(out, "build-2"), "by node")

		var doc StatusDoc
		e.runJSON(&doc, "status")
		require.Len(t, doc.Skipped, 2)
		assert.Equal(t, "build-2", doc.Skipped[1].Node)
		assert.Equal(t, reason, doc.Skipped[1].Reason)

		// A hostile link name is shown escaped: it must not drive the
		// operator's terminal.
		hostile := "/srv/drop/\x1b]0;pwned\x07\x1b[2J.diskdump"
		require.NoError(t, sk.Add(ctx, jobs.SkippedFile{Root: "/srv/drop", Path: hostile, Reason: "symlink " + hostile + " -> /etc/shadow not used"}))
		_, out, _ = e.run("status")
		assert.NotContains(t, out, "\x1b]0;")
		assert.NotContains(t, out, "\x1b[2J")
		assert.Contains(t, out, `/srv/drop/\x1b]0;pwned\x07\x1b[2J.diskdump`)
		require.NoError(t, e.rdb.HDel(ctx, "imagesync:skipped:build-2", hostile).Err())

		// A rescan that no longer finds it clears it.
		require.NoError(t, sk.SetRoot(ctx, "/srv/drop", nil))
		e.runJSON(&doc, "status")
		require.Len(t, doc.Skipped, 1)
		assert.Equal(t, "build-1", doc.Skipped[0].Node)
	})
}
