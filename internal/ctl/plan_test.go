package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/jobs"
)

// worker runs every task to success except those told to fail.
type worker struct {
	mu   sync.Mutex
	fail map[string]bool
	runs map[string]int
}

func startWorker(t *testing.T, e *env) *worker {
	w := &worker{fail: map[string]bool{}, runs: map[string]int{}}
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{
		Concurrency: 4, Queues: map[string]int{jobs.QueueDefault: 1, jobs.UploadQueue("n1"): 1, jobs.NodeQueue("n1"): 1},
		LogLevel: asynq.FatalLevel, ShutdownTimeout: time.Second, TaskCheckInterval: 20 * time.Millisecond,
	})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.runs[id]++
		if w.fail[id] {
			return fmt.Errorf("cannot read image file: permission denied: %w", asynq.SkipRetry)
		}
		if task.Type() == jobs.TypeUpload {
			// Like the real handler, report the uploaded hash: the
			// registration that follows is named after it.
			b, _ := json.Marshal(jobs.Progress{Phase: jobs.PhaseDone, ObjectHash: "hash"})
			_, _ = task.ResultWriter().Write(b)
		}
		return nil
	})))
	t.Cleanup(srv.Shutdown)
	return w
}

func (w *worker) setFail(id string) {
	w.mu.Lock()
	w.fail[id] = true
	w.mu.Unlock()
}

func (w *worker) runCount(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runs[id]
}

func waitState(t *testing.T, e *env, queue, id string, st asynq.TaskState) {
	t.Helper()
	require.Eventually(t, func() bool {
		ti, err := e.insp.GetTaskInfo(queue, id)
		return err == nil && ti.State == st
	}, 15*time.Second, 20*time.Millisecond, "%s did not become %s", id, st)
}

func TestPlan(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		w := startWorker(t, e)
		for _, p := range []string{"new.diskdump", "same.diskdump", "tmpl/changed.diskdump", "failed.diskdump", "queued.diskdump", "meta.diskdump"} {
			writeFile(t, filepath.Join(e.root, p), "image "+p)
		}
		writeFile(t, filepath.Join(e.root, "tmpl", "_template.meta"), `{"properties": {"OS": "debian"}}`)
		require.NoError(t, os.Symlink("nowhere", filepath.Join(e.root, "broken.diskdump")))

		cfg := &config.Config{Node: "n1", Watch: []config.Watch{{Dir: e.root, Container: "images"}}}
		catalog := jobs.NewCatalog(cfg.Watch, "n1")
		enq := jobs.NewEnqueuer(e.rdb, "n1")
		scan, err := jobs.Scan(context.Background(), cfg.Watch)
		require.NoError(t, err)
		facts := map[string]jobs.FileFacts{}
		for _, f := range scan.Images {
			facts[f.RelPath] = f
		}
		done := func(rel string, register bool) {
			up, err := catalog.UploadRequest(facts[rel], false)
			require.NoError(t, err)
			_, err = enq.Enqueue(context.Background(), up)
			require.NoError(t, err)
			want := asynq.TaskStateCompleted
			if w.fail[up.ID] {
				want = asynq.TaskStateArchived
			}
			waitState(t, e, up.Queue, up.ID, want)
			if register {
				reg, err := catalog.RegisterRequest(facts[rel], "hash", "uuid", "upload", false)
				require.NoError(t, err)
				_, err = enq.Enqueue(context.Background(), reg)
				require.NoError(t, err)
				waitState(t, e, reg.Queue, reg.ID, asynq.TaskStateCompleted)
			}
		}
		done("same.diskdump", true)
		done("tmpl/changed.diskdump", true)
		// Registered by a metafile edit after its upload: that registration
		// carries no hash, and counts as much as the upload's own.
		done("meta.diskdump", false)
		viaMeta, err := catalog.RegisterRequest(facts["meta.diskdump"], "", "", "metafile", false)
		require.NoError(t, err)
		_, err = enq.Enqueue(context.Background(), viaMeta)
		require.NoError(t, err)
		waitState(t, e, viaMeta.Queue, viaMeta.ID, asynq.TaskStateCompleted)
		failedUp, err := catalog.UploadRequest(facts["failed.diskdump"], false)
		require.NoError(t, err)
		w.setFail(failedUp.ID)
		done("failed.diskdump", false)
		queuedUp, err := catalog.UploadRequest(facts["queued.diskdump"], false)
		require.NoError(t, err)
		b, _ := json.Marshal(queuedUp.Payload)
		_, err = e.client.Enqueue(asynq.NewTask(jobs.TypeUpload, b), asynq.TaskID(queuedUp.ID), asynq.Queue(queuedUp.Queue), asynq.ProcessIn(time.Hour))
		require.NoError(t, err)

		// The template changes after the last registration.
		writeFile(t, filepath.Join(e.root, "tmpl", "_template.meta"), `{"properties": {"OS": "debian-12"}}`)

		var raw map[string]any
		e.runJSON(&raw, "plan")
		assert.Equal(t, sorted("images", "problems", "summary"), keys(t, raw))
		img0 := raw["images"].([]any)[0]
		assert.Equal(t, sorted("root", "rel_path", "path", "location", "size", "upload", "register", "action", "reason", "metadata", "warnings", "errors"), keys(t, img0))
		assert.Equal(t, sorted("task_id", "queue", "status", "state"), keys(t, img0.(map[string]any)["upload"]))

		var doc PlanDoc
		e.runJSON(&doc, "plan")
		got := map[string]PlanImage{}
		for _, im := range doc.Images {
			got[im.RelPath] = im
		}
		require.Len(t, got, 6)
		assert.Equal(t, ActionUpload, got["new.diskdump"].Action)
		assert.Equal(t, TaskNew, got["new.diskdump"].Upload.Status)
		assert.Equal(t, "/images/new.diskdump", got["new.diskdump"].Location)
		assert.Equal(t, ActionNone, got["same.diskdump"].Action)
		assert.Equal(t, TaskDone, got["same.diskdump"].Register.Status)
		assert.Equal(t, ActionNone, got["meta.diskdump"].Action)
		assert.Equal(t, viaMeta.ID, got["meta.diskdump"].Register.TaskID)
		assert.Equal(t, ActionRegister, got["tmpl/changed.diskdump"].Action)
		assert.Equal(t, TaskDone, got["tmpl/changed.diskdump"].Upload.Status)
		assert.Equal(t, TaskNew, got["tmpl/changed.diskdump"].Register.Status)
		assert.Equal(t, ActionFailed, got["failed.diskdump"].Action)
		assert.Equal(t, failedUp.ID, got["failed.diskdump"].Upload.TaskID)
		assert.Contains(t, got["failed.diskdump"].Reason, "syncctl inspect "+failedUp.ID)
		assert.Equal(t, ActionQueued, got["queued.diskdump"].Action)
		assert.Equal(t, "scheduled", got["queued.diskdump"].Upload.State)
		assert.Equal(t, map[string]int{"upload": 1, "register": 1, "none": 2, "queued": 1, "failed": 1, "error": 0}, doc.Summary)
		require.Len(t, doc.Problems, 1)
		assert.Contains(t, doc.Problems[0].Error, "broken symlink")

		code, out, errOut := e.run("plan")
		require.Equal(t, 0, code, errOut)
		for _, s := range []string{"would upload", "would re-register", "up to date", "failed:", "queued: upload scheduled", "cannot read", "6 image(s)"} {
			assert.Contains(t, out, s)
		}

		// Nothing was enqueued by plan.
		_, err = e.insp.GetTaskInfo(jobs.UploadQueue("n1"), got["new.diskdump"].Upload.TaskID)
		assert.ErrorIs(t, err, asynq.ErrTaskNotFound)
		_, err = e.insp.GetTaskInfo(jobs.NodeQueue("n1"), got["tmpl/changed.diskdump"].Register.TaskID)
		assert.ErrorIs(t, err, asynq.ErrTaskNotFound)
	})
}

func TestResync(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		w := startWorker(t, e)
		img := filepath.Join(e.root, "sub", "a b.diskdump")
		writeFile(t, img, "image a")
		writeFile(t, filepath.Join(e.root, "notes.txt"), "t")

		var raw map[string]any
		e.runJSON(&raw, "resync", img)
		assert.Equal(t, sorted("enqueued", "errors"), keys(t, raw))
		e0 := raw["enqueued"].([]any)[0]
		assert.Equal(t, sorted("path", "root", "rel_path", "location", "size", "task_id", "queue", "outcome"), keys(t, e0))

		var doc ResyncDoc
		require.NoError(t, json.Unmarshal(mustJSON(t, raw), &doc))
		require.Len(t, doc.Enqueued, 1)
		r := doc.Enqueued[0]
		assert.Equal(t, "sub/a b.diskdump", r.RelPath)
		assert.Equal(t, "/images/sub/a b.diskdump", r.Location)
		assert.Equal(t, jobs.UploadQueue("n1"), r.Queue)
		assert.Equal(t, string(jobs.Enqueued), r.Outcome)
		waitState(t, e, r.Queue, r.TaskID, asynq.TaskStateCompleted)
		ti, err := e.insp.GetTaskInfo(r.Queue, r.TaskID)
		require.NoError(t, err)
		var p jobs.UploadPayload
		require.NoError(t, json.Unmarshal(ti.Payload, &p))
		assert.True(t, p.Force)
		assert.Equal(t, int64(len("image a")), p.Size)
		assert.Equal(t, 1, w.runCount(r.TaskID))

		// Again: the completed task is replaced and runs again, ignoring
		// what was done before.
		t.Chdir(filepath.Join(e.root, "sub"))
		e.runJSON(&doc, "resync", "a b.diskdump")
		require.Len(t, doc.Enqueued, 1)
		assert.Equal(t, r.TaskID, doc.Enqueued[0].TaskID)
		assert.Equal(t, string(jobs.Enqueued), doc.Enqueued[0].Outcome)
		require.Eventually(t, func() bool { return w.runCount(r.TaskID) == 2 }, 15*time.Second, 20*time.Millisecond)

		code, out, errOut := e.run("resync", img, filepath.Join(e.root, "notes.txt"), "/nonexistent/x.diskdump", "--json")
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "2 of 3 path(s) could not be resynced")
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		assert.Len(t, doc.Enqueued, 1)
		require.Len(t, doc.Errors, 2)
		assert.Contains(t, doc.Errors[0].Error, "not an image file")
		assert.Contains(t, doc.Errors[1].Error, "not under any watch root")

		code, out, _ = e.run("resync", img)
		assert.Equal(t, 0, code)
		assert.Contains(t, out, "→ /images/sub/a b.diskdump")
	})
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
