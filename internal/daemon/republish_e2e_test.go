package daemon

// End-to-end tests of the republish sweep and of `syncctl retry` against a
// running daemon: the operator's scenarios of SPEC §2.5 and §5.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"go.yaml.in/yaml/v3"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/redistest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// rpCloudWrite is one request that may change something in the cloud.
type rpCloudWrite struct {
	Method   string
	Path     string // decoded URL path
	Location string // X-Image-Meta-Location, for registrations
}

// rpWriteRecorder remembers every non-GET/HEAD request made to Pithos+ or
// Plankton, so a test can tell which images were written to.
type rpWriteRecorder struct {
	mu     sync.Mutex
	writes []rpCloudWrite
}

func (w *rpWriteRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead &&
			(strings.HasPrefix(r.URL.Path, "/object-store/") || strings.HasPrefix(r.URL.Path, "/image/")) {
			w.mu.Lock()
			w.writes = append(w.writes, rpCloudWrite{Method: r.Method, Path: r.URL.Path, Location: r.Header.Get("X-Image-Meta-Location")})
			w.mu.Unlock()
		}
		h.ServeHTTP(rw, r)
	})
}

// since returns the writes recorded after the first n.
func (w *rpWriteRecorder) since(n int) []rpCloudWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes[n:])
}

func (w *rpWriteRecorder) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes)
}

// rpTouching filters the writes aimed at one image: its object, its .meta,
// its registration (by location) or its Plankton record (by id).
func rpTouching(writes []rpCloudWrite, cloud *sandboxtest.Cloud, object, imageID string) []rpCloudWrite {
	objPath := "/object-store/v1/" + cloud.User.UUID + "/images/" + object
	loc := "pithos://" + cloud.User.UUID + "/images/" + object
	var out []rpCloudWrite
	for _, w := range writes {
		switch {
		case w.Path == objPath, w.Path == objPath+".meta", w.Location == loc,
			strings.HasPrefix(w.Path, "/image/") && strings.Contains(w.Path+"/", "/images/"+imageID+"/"):
			out = append(out, w)
		}
	}
	return out
}

// rpStartRecordingCloud is sandboxtest.Start with an rpWriteRecorder in front.
func rpStartRecordingCloud(t *testing.T) (*sandboxtest.Cloud, *rpWriteRecorder) {
	t.Helper()
	rec := &rpWriteRecorder{}
	return sandboxtest.StartWrapped(t, sandbox.Config{BlockSize: 4096}, rec.wrap), rec
}

// rpDaemonInspector inspects the queues of a running daemon.
func rpDaemonInspector(t *testing.T, cfg *config.Config, info Info) (*asynq.Inspector, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: info.RedisAddr, DB: cfg.Redis.DB})
	t.Cleanup(func() { _ = rdb.Close() })
	return asynq.NewInspectorFromRedisClient(rdb), rdb
}

// rpAllTasks maps every task id in every queue to its state.
func rpAllTasks(t *testing.T, insp *asynq.Inspector) map[string]asynq.TaskState {
	t.Helper()
	queues, err := insp.Queues()
	require.NoError(t, err)
	out := map[string]asynq.TaskState{}
	for _, q := range queues {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			insp.ListPendingTasks, insp.ListActiveTasks, insp.ListScheduledTasks,
			insp.ListRetryTasks, insp.ListArchivedTasks, insp.ListCompletedTasks,
		} {
			tasks, err := list(q, asynq.PageSize(10000))
			require.NoError(t, err)
			for _, ti := range tasks {
				out[ti.ID] = ti.State
			}
		}
	}
	return out
}

// rpWaitIdle waits until no task is pending, active, scheduled or retrying,
// then requires that none failed.
func rpWaitIdle(t *testing.T, insp *asynq.Inspector, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "the queues to drain", func() bool {
		for _, st := range rpAllTasks(t, insp) {
			if st != asynq.TaskStateCompleted && st != asynq.TaskStateArchived {
				return false
			}
		}
		return true
	})
	for id, st := range rpAllTasks(t, insp) {
		require.NotEqual(t, asynq.TaskStateArchived, st, "task %s failed", id)
	}
}

// rpWriteCtlConfig writes a syncctl config reaching the daemon's Redis.
func rpWriteCtlConfig(t *testing.T, cfg *config.Config, info Info) string {
	t.Helper()
	c := *cfg
	c.Redis = config.Redis{Addr: info.RedisAddr, DB: cfg.Redis.DB}
	b, err := yaml.Marshal(&c)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "syncd.yaml")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

// rpSyncctl runs the operator CLI in-process against cfgPath.
func rpSyncctl(t *testing.T, cfgPath string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := ctl.Main(ctx, append([]string{"--config", cfgPath}, args...), ctl.Options{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	return code, out.String(), errOut.String()
}

func rpSyncctlJSON(t *testing.T, cfgPath string, v any, args ...string) {
	t.Helper()
	code, out, errOut := rpSyncctl(t, cfgPath, append(args, "--json")...)
	require.Equal(t, 0, code, "syncctl %v\nstderr: %s\nstdout: %s", args, errOut, out)
	require.NoError(t, json.Unmarshal([]byte(out), v), "stdout: %s", out)
}

// rpEnqueueSweep enqueues the image:republish task of node's roots exactly
// as the schedule does for a tick, and returns it.
func rpEnqueueSweep(t *testing.T, rdb *redis.Client, node string, tick time.Time) jobs.Request {
	t.Helper()
	r := jobs.SweepRequest(jobs.RepublishPayload{V: jobs.PayloadVersion, Tick: tick.UTC().Format(time.RFC3339Nano), Scope: jobs.SweepNodeRoots, Node: node})
	out, err := jobs.NewEnqueuer(rdb, node).Enqueue(context.Background(), r)
	require.NoError(t, err)
	require.Equal(t, jobs.Enqueued, out)
	return r
}

// rpSweepResult waits for a republish task to complete and decodes its report.
func rpSweepResult(t *testing.T, insp *asynq.Inspector, r jobs.Request) jobs.SweepReport {
	t.Helper()
	var ti *asynq.TaskInfo
	eventually(t, 30*time.Second, "republish sweep "+r.ID+" to complete", func() bool {
		var err error
		ti, err = insp.GetTaskInfo(r.Queue, r.ID)
		return err == nil && ti.State == asynq.TaskStateCompleted
	})
	var rep jobs.SweepReport
	require.NoError(t, json.Unmarshal(ti.Result, &rep), "result: %s", ti.Result)
	return rep
}

func rpSweepByRel(rep jobs.SweepReport) map[string]jobs.SweepImage {
	m := map[string]jobs.SweepImage{}
	for _, im := range rep.Images {
		m[im.RelPath] = im
	}
	return m
}

func rpProps(im map[string]any) map[string]any {
	p, _ := im["properties"].(map[string]any)
	return p
}

// TestTemplateEditRepublish is the operator scenario of the issue: a
// _template.meta is edited (a property added, is-public flipped) while the
// watcher cannot see it (the daemon restarts with a settle time longer than
// the test, so only the republish sweep can react), and the next sweep
// brings every affected image in line with metadata requests only: no block
// and no hashmap is sent, and the images the template does not cover get no
// write request at all. A dry run before it changes nothing.
func TestTemplateEditRepublish(t *testing.T) {
	cloud, rec := rpStartRecordingCloud(t)
	root := filepath.Join(t.TempDir(), "images")
	affected := []string{"os/a.diskdump", "os/deep/b.diskdump"}
	untouched := []string{"top.diskdump", "other/c.diskdump"}
	writeFile(t, filepath.Join(root, "os", "_template.meta"), `{"properties": {"OS": "debian"}}`)
	for i, rel := range append(slices.Clone(affected), untouched...) {
		writeRandom(t, filepath.Join(root, filepath.FromSlash(rel)), 3*4096+i*100)
	}

	// Phase 1: the daemon uploads, registers and publishes everything.
	cfg := testConfig(t, cloud, root)
	info, stop := startDaemon(t, cfg, nil)
	insp, _ := rpDaemonInspector(t, cfg, info)
	eventually(t, 60*time.Second, "4 registered images", func() bool {
		imgs := images(t, cloud, cloud.User)
		if len(imgs) != 4 {
			return false
		}
		for _, rel := range affected {
			if im := imageByName(imgs, rel); im == nil || rpProps(im)["os"] != "debian" {
				return false
			}
		}
		return true
	})
	rpWaitIdle(t, insp, 60*time.Second)
	time.Sleep(500 * time.Millisecond) // let a late watcher event show
	rpWaitIdle(t, insp, 60*time.Second)
	stop()

	before := map[string]map[string]any{}
	for _, im := range images(t, cloud, cloud.User) {
		before[im["name"].(string)] = im
		assert.Equal(t, false, im["is_public"], im["name"])
		assert.Equal(t, "linux", rpProps(im)["osfamily"], "the watch entry's defaults apply: %v", im["name"])
	}
	require.Len(t, before, 4)
	stats0 := cloud.Stats()
	require.Positive(t, stats0.BlocksReceived, "phase 1 uploaded the images")

	// The operator edits the template: a new property, and public.
	writeFile(t, filepath.Join(root, "os", "_template.meta"), `{"is-public": true, "properties": {"OS": "debian", "ROLE": "server"}}`)

	// Phase 2: the daemon again, its watcher blind for the test's length.
	cfg2 := *cfg
	cfg2.Settle = config.Duration(time.Hour)
	cfg2.Rescan = config.Duration(time.Hour)
	cfg2.StateDir = filepath.Join(t.TempDir(), "state")
	info2, _ := startDaemon(t, &cfg2, nil)
	insp2, rdb2 := rpDaemonInspector(t, &cfg2, info2)
	ctlCfg := rpWriteCtlConfig(t, &cfg2, info2)

	t.Run("dry run changes nothing", func(t *testing.T) {
		tasks0, writes0, st0 := rpAllTasks(t, insp2), rec.count(), cloud.Stats()
		var rep jobs.SweepReport
		rpSyncctlJSON(t, ctlCfg, &rep, "republish", "--dry-run")
		assert.True(t, rep.DryRun)
		assert.Equal(t, 0, rep.Enqueued)
		got := rpSweepByRel(rep)
		for _, rel := range affected {
			assert.Equal(t, jobs.SweepDrifted, got[rel].State, rel)
			assert.Contains(t, strings.Join(got[rel].Changes, "\n"), "role", rel)
			assert.Contains(t, strings.Join(got[rel].Changes, "\n"), "public", rel)
			assert.NotEmpty(t, got[rel].Task, "the report names the task it would queue")
		}
		for _, rel := range untouched {
			assert.Equal(t, jobs.SweepInSync, got[rel].State, rel)
			assert.Empty(t, got[rel].Task, rel)
		}
		code, out, errOut := rpSyncctl(t, ctlCfg, "republish", "--dry-run")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "Dry run: nothing was queued.")
		assert.Contains(t, out, "would queue "+got[affected[0]].Task)

		time.Sleep(500 * time.Millisecond) // anything wrongly queued would start
		assert.Equal(t, tasks0, rpAllTasks(t, insp2), "a dry run enqueues nothing")
		assert.Empty(t, rec.since(writes0), "a dry run makes no write request")
		st := cloud.Stats()
		assert.Equal(t, st0.ImageRegisters, st.ImageRegisters)
		assert.Equal(t, st0.ImageUpdates, st.ImageUpdates)
		assert.Equal(t, st0.ObjectPuts, st.ObjectPuts)
		assert.Equal(t, st0.HashmapPuts, st.HashmapPuts)
		assert.Equal(t, st0.BlocksReceived, st.BlocksReceived)
		for _, im := range images(t, cloud, cloud.User) {
			assert.Equal(t, before[im["name"].(string)], im, "unchanged by the dry run")
		}
	})

	writes0 := rec.count()

	// The scheduled sweep (enqueued as the schedule does) runs in the daemon.
	rep := rpSweepResult(t, insp2, rpEnqueueSweep(t, rdb2, cfg2.Node, time.Now()))
	assert.False(t, rep.DryRun)
	assert.Equal(t, len(affected), rep.Enqueued, "one re-registration per affected image")
	got := rpSweepByRel(rep)
	for _, rel := range affected {
		assert.Equal(t, jobs.SweepDrifted, got[rel].State, rel)
		assert.Equal(t, string(jobs.Enqueued), got[rel].Outcome, rel)
	}
	for _, rel := range untouched {
		assert.Equal(t, jobs.SweepInSync, got[rel].State, rel)
		assert.Empty(t, got[rel].Task, rel)
	}

	eventually(t, 60*time.Second, "affected images re-registered and public", func() bool {
		imgs := images(t, cloud, cloud.User)
		for _, rel := range affected {
			im := imageByName(imgs, rel)
			if im == nil || im["is_public"] != true || rpProps(im)["role"] != "server" {
				return false
			}
		}
		return true
	})
	rpWaitIdle(t, insp2, 60*time.Second)

	after := map[string]map[string]any{}
	for _, im := range images(t, cloud, cloud.User) {
		after[im["name"].(string)] = im
	}
	require.Len(t, after, 4, "re-registration updates images in place")
	for _, rel := range affected {
		im := after[rel]
		assert.Equal(t, before[rel]["id"], im["id"], rel)
		assert.Equal(t, before[rel]["checksum"], im["checksum"], rel)
		assert.Equal(t, true, im["is_public"], rel)
		assert.Equal(t, "server", rpProps(im)["role"], rel)
		assert.Equal(t, "debian", rpProps(im)["os"], rel)
		assert.Equal(t, "linux", rpProps(im)["osfamily"], rel)
	}
	for _, rel := range untouched {
		assert.Equal(t, before[rel], after[rel], "%s: untouched images are not re-registered", rel)
	}

	// Only metadata requests: no block, no hashmap; nothing written for the
	// images the template does not cover.
	st := cloud.Stats()
	assert.Equal(t, stats0.BlocksReceived, st.BlocksReceived, "no block re-uploaded")
	assert.Equal(t, stats0.BlockBytesReceived, st.BlockBytesReceived)
	assert.Equal(t, stats0.HashmapPuts, st.HashmapPuts, "no image object rewritten")
	writes := rec.since(writes0)
	for _, rel := range untouched {
		assert.Empty(t, rpTouching(writes, cloud, rel, before[rel]["id"].(string)), "%s: no write request", rel)
	}
	matched := 0
	for _, rel := range affected {
		w := rpTouching(writes, cloud, rel, before[rel]["id"].(string))
		matched += len(w)
		assert.True(t, slices.ContainsFunc(w, func(w rpCloudWrite) bool { return w.Method == http.MethodPost && w.Location != "" }),
			"%s re-registered: %v", rel, w)
		meta := "/object-store/v1/" + cloud.User.UUID + "/images/" + rel + ".meta"
		assert.True(t, slices.ContainsFunc(w, func(w rpCloudWrite) bool { return w.Path == meta }), "%s: its .meta is refreshed", rel)
		for _, x := range w {
			assert.NotEqual(t, "/object-store/v1/"+cloud.User.UUID+"/images/"+rel, x.Path, "the image object itself is not written")
		}
	}
	assert.Equal(t, len(writes), matched, "every write request was for an affected image: %v", writes)
	var metaFile map[string]any
	require.NoError(t, json.Unmarshal(objectGet(t, cloud, "images", affected[0]+".meta"), &metaFile))
	assert.Equal(t, "True", metaFile["is-public"], "the uploaded .meta (kamaki's format) is the new registration")

	// The next sweep finds everything in line and writes nothing.
	writes1 := rec.count()
	rep = rpSweepResult(t, insp2, rpEnqueueSweep(t, rdb2, cfg2.Node, time.Now().Add(time.Minute)))
	assert.Equal(t, 0, rep.Enqueued)
	assert.Equal(t, map[jobs.SweepState]int{jobs.SweepInSync: 4}, rep.Counts)
	rpWaitIdle(t, insp2, 30*time.Second)
	assert.Empty(t, rec.since(writes1), "a sweep over images in line writes nothing")
}

// TestRetryAfterFix: an image whose metafile is invalid fails permanently
// with a message naming the file; once the operator fixes the metafile,
// `rpSyncctl retry ID` re-runs the failed job and it succeeds, without
// re-uploading the image. The watcher is kept blind (long settle) so the
// fix is picked up by the retry alone; `rpSyncctl resync` starts the work.
func TestRetryAfterFix(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 4096})
	root := filepath.Join(t.TempDir(), "images")
	img := filepath.Join(root, "bad.diskdump")
	writeRandom(t, img, 2*4096+10)
	writeFile(t, img+".meta", `{"disk-format": "vmdk"}`)

	cfg := testConfig(t, cloud, root)
	cfg.Settle = config.Duration(time.Hour)
	cfg.Rescan = config.Duration(time.Hour)
	info, _ := startDaemon(t, cfg, nil)
	ctlCfg := rpWriteCtlConfig(t, cfg, info)

	var rs ctl.ResyncDoc
	rpSyncctlJSON(t, ctlCfg, &rs, "resync", img)
	require.Len(t, rs.Enqueued, 1)

	// The job fails permanently: it is archived with an actionable message.
	var failed ctl.ListDoc
	eventually(t, 60*time.Second, "a failed task", func() bool {
		rpSyncctlJSON(t, ctlCfg, &failed, "list", "failed")
		return len(failed.Tasks) == 1
	})
	task := failed.Tasks[0]
	require.Equal(t, jobs.TypeRegister, task.Type, "the upload succeeds; the registration cannot be built")
	assert.Contains(t, task.LastError, "bad.diskdump.meta", "the message names the file")
	assert.Contains(t, task.LastError, "vmdk", "and the bad value")
	var status ctl.StatusDoc
	rpSyncctlJSON(t, ctlCfg, &status, "status")
	require.NotEmpty(t, status.Failures)
	assert.Equal(t, task.ID, status.Failures[0].ID)
	assert.Equal(t, 1, status.Totals.Archived)
	assert.Empty(t, images(t, cloud, cloud.User), "nothing is registered from an invalid metafile")

	// Retrying before the fix fails again, the same way. (asynq keeps
	// last_failed_at in whole seconds: let one pass so the new failure shows.)
	time.Sleep(time.Until(task.LastFailedAt.Truncate(time.Second).Add(1100 * time.Millisecond)))
	var doc ctl.RetryDoc
	rpSyncctlJSON(t, ctlCfg, &doc, "retry", task.ID)
	require.Len(t, doc.Retried, 1)
	eventually(t, 30*time.Second, "the retried task to fail again", func() bool {
		var d ctl.TaskDetail
		rpSyncctlJSON(t, ctlCfg, &d, "inspect", task.ID)
		return d.State == "archived" && d.LastFailedAt != nil && d.LastFailedAt.After(*task.LastFailedAt)
	})
	assert.Empty(t, images(t, cloud, cloud.User))

	// The operator fixes the metafile; the retry succeeds.
	writeFile(t, img+".meta", `{"disk-format": "diskdump", "properties": {"FIXED": "yes"}}`)
	blocks := cloud.Stats().BlocksReceived
	rpSyncctlJSON(t, ctlCfg, &doc, "retry", task.ID)
	require.Len(t, doc.Retried, 1)
	assert.Equal(t, "archived", doc.Retried[0].From)
	eventually(t, 60*time.Second, "the retried task to complete", func() bool {
		var d ctl.TaskDetail
		rpSyncctlJSON(t, ctlCfg, &d, "inspect", task.ID)
		return d.State == "completed"
	})
	eventually(t, 60*time.Second, "the image registered as fixed", func() bool {
		im := imageByName(images(t, cloud, cloud.User), "bad.diskdump")
		return im != nil && rpProps(im)["fixed"] == "yes"
	})
	insp, _ := rpDaemonInspector(t, cfg, info)
	rpWaitIdle(t, insp, 60*time.Second)
	assert.Equal(t, blocks, cloud.Stats().BlocksReceived, "retrying the registration re-uploads nothing")
	var list ctl.ListDoc
	rpSyncctlJSON(t, ctlCfg, &list, "list", "failed")
	assert.Empty(t, list.Tasks, "nothing left failed")
}

// TestScheduleOneSweepPerTick: two daemons' schedules of one node on one
// Redis enqueue each tick's sweep once (the task id is the tick's), and
// the sweep of the shared roots once for both nodes.
func TestScheduleOneSweepPerTick(t *testing.T) {
	rdb := redistest.Start(t).Client(t)

	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	roots := []config.Watch{{Dir: "/own", Container: "images"}, {Dir: "/shared", Container: "images", Shared: true}}
	var scheds []*schedule
	for _, node := range []string{"n", "n", "m"} {
		s, err := startSchedule(context.Background(), "@every 1s", time.UTC, jobs.NewCatalog(roots, node), jobs.NewEnqueuer(rdb, node), log)
		require.NoError(t, err)
		scheds = append(scheds, s)
	}
	time.Sleep(3500 * time.Millisecond)
	for _, s := range scheds {
		s.Stop()
	}

	// No worker serves this Redis: every sweep enqueued is still pending.
	insp := asynq.NewInspectorFromRedisClient(rdb)
	ticks := map[string]map[string]int{} // tick → queue → sweeps
	for _, q := range []string{jobs.NodeQueue("n"), jobs.NodeQueue("m"), jobs.QueueDefault} {
		pending, err := insp.ListPendingTasks(q, asynq.PageSize(100))
		require.NoError(t, err)
		for _, ti := range pending {
			require.Equal(t, jobs.TypeRepublish, ti.Type)
			var p jobs.RepublishPayload
			require.NoError(t, json.Unmarshal(ti.Payload, &p))
			if ticks[p.Tick] == nil {
				ticks[p.Tick] = map[string]int{}
			}
			ticks[p.Tick][q]++
		}
	}
	assert.GreaterOrEqual(t, len(ticks), 2, "ticks: %v", ticks)
	enqueued, queued := map[string]int{}, 0
	for _, e := range logs.FilterMessage("republish sweep scheduled").All() {
		m := e.ContextMap()
		tick := m["tick"].(time.Time).UTC().Format(time.RFC3339Nano)
		switch m["outcome"] {
		case string(jobs.Enqueued):
			enqueued[tick]++
		case string(jobs.Queued):
			queued++
		default:
			t.Errorf("tick %s: outcome %v", tick, m["outcome"])
		}
	}
	for tick, byQueue := range ticks {
		assert.Equal(t, map[string]int{jobs.NodeQueue("n"): 1, jobs.NodeQueue("m"): 1, jobs.QueueDefault: 1}, byQueue, "tick %s", tick)
		assert.Equal(t, 3, enqueued[tick], "tick %s: three sweeps enqueued once each", tick)
		parsed, err := time.Parse(time.RFC3339Nano, tick)
		require.NoError(t, err)
		assert.Zero(t, parsed.Nanosecond(), "tick %s is on a whole second", tick)
	}
	assert.Len(t, enqueued, len(ticks))
	assert.Positive(t, queued, "the second schedule of node n found its ticks already queued")
}
