package jobs

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/metrics"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// pipeline is a sandbox cloud, a miniredis queue and an asynq server running
// the real handlers: the upload → register → publish chain without the
// watcher.
type pipeline struct {
	t       *testing.T
	ctx     context.Context
	cloud   *sandboxtest.Cloud
	root    string
	catalog *Catalog
	state   *cloud.State
	session *cloud.Session
	enq     *Enqueuer
	insp    *asynq.Inspector
	rdb     *redis.Client
	metrics *metrics.Metrics
	// nodes is what Deps.Nodes answers (nil: nothing but this node).
	nodes atomic.Pointer[[]string]
}

func newPipeline(t *testing.T, sc sandbox.Config, token string, w config.Watch) *pipeline {
	t.Helper()
	return newPipelineWith(t, pipelineOptions{sandbox: sc, token: token, watch: w})
}

// pipelineOptions are the less common settings of a pipeline.
type pipelineOptions struct {
	sandbox sandbox.Config
	token   string
	watch   config.Watch
	wrap    func(http.Handler) http.Handler // in front of the sandbox
	log     *zap.Logger
}

func newPipelineWith(t *testing.T, o pipelineOptions) *pipeline {
	t.Helper()
	sc, token, w := o.sandbox, o.token, o.watch
	if sc.BlockSize == 0 {
		sc.BlockSize = 4096
	}
	c := sandboxtest.StartWrapped(t, sc, o.wrap)
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true)
	require.NoError(t, mr.Start())
	t.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })

	p := &pipeline{t: t, ctx: context.Background(), cloud: c, root: filepath.Join(t.TempDir(), "images"), rdb: rdb, metrics: metrics.New(nil)}
	require.NoError(t, os.MkdirAll(p.root, 0o755))
	w.Dir = p.root
	if w.Container == "" {
		w.Container = "images"
	}
	p.catalog = NewCatalog([]config.Watch{w}, "n1")
	p.enq = NewEnqueuer(rdb, "n1")
	// The servers wait for work as syncd's do: woken by this process's
	// enqueues, polling an idle queue once a second.
	p.enq.Waker = NewQueueWaker(DefaultIdlePoll)
	p.insp = p.enq.Inspector()
	log := o.log
	if log == nil {
		log = zaptest.NewLogger(t)
	}
	if token == "" {
		token = sandboxtest.Alice.Token
	}
	session := cloud.New(cloud.Options{AuthURL: c.AuthURL, Token: token, Logger: log})
	p.session = session
	queues := []string{UploadQueue("n1"), NodeQueue("n1"), QueueSharedUpload, QueueDefault}
	gate := NewAuthGate(rdb, p.insp, queues, log, session.Invalidate)
	cache, err := pithos.OpenHashmapCache(filepath.Join(t.TempDir(), "cache"))
	require.NoError(t, err)
	w2 := NewWorker(Deps{Session: session, Catalog: p.catalog, Enqueuer: p.enq, Cache: cache, Log: log, Gate: gate, Redis: rdb, Blocks: 4, Metrics: p.metrics,
		Nodes: func(context.Context) ([]string, error) {
			if n := p.nodes.Load(); n != nil {
				return *n, nil
			}
			return nil, nil
		}})
	srv := asynq.NewServerFromRedisClient(p.enq.Waker.Client(rdb), asynq.Config{
		Concurrency: 4, Queues: map[string]int{UploadQueue("n1"): 1, NodeQueue("n1"): 1, QueueSharedUpload: 1, QueueDefault: 1},
		TaskCheckInterval: WakePollInterval,
		RetryDelayFunc:    func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond },
		IsFailure:         IsFailure, LogLevel: asynq.FatalLevel,
	})
	require.NoError(t, srv.Start(w2.Handler()))
	t.Cleanup(srv.Shutdown)
	if token == sandboxtest.Alice.Token {
		p.state, err = session.Get(p.ctx)
		require.NoError(t, err)
	}
	return p
}

func (p *pipeline) write(rel string, data []byte) FileFacts {
	p.t.Helper()
	abs := filepath.Join(p.root, filepath.FromSlash(rel))
	require.NoError(p.t, os.MkdirAll(filepath.Dir(abs), 0o755))
	require.NoError(p.t, os.WriteFile(abs, data, 0o644))
	if filepath.Ext(rel) != ".diskdump" {
		return FileFacts{}
	}
	f, err := StatImage(p.catalog.Roots(), abs)
	require.NoError(p.t, err)
	return f
}

func (p *pipeline) enqueue(r Request, err error) Outcome {
	p.t.Helper()
	require.NoError(p.t, err)
	out, err := p.enq.Enqueue(p.ctx, r)
	require.NoError(p.t, err)
	return out
}

// wait polls until the task with id in queue reaches state.
func (p *pipeline) wait(queue, id string, state asynq.TaskState) *asynq.TaskInfo {
	p.t.Helper()
	var info *asynq.TaskInfo
	require.Eventually(p.t, func() bool {
		var err error
		info, err = p.insp.GetTaskInfo(queue, id)
		return err == nil && info.State == state
	}, 20*time.Second, 20*time.Millisecond, "task %s never reached %v (last: %+v)", id, state, info)
	return info
}

func (p *pipeline) image(name string) *image.Image {
	p.t.Helper()
	imgs, err := p.state.Images.ListDetail(p.ctx, image.ListOptions{})
	require.NoError(p.t, err)
	for _, img := range imgs {
		if img.Name == name {
			return img
		}
	}
	return nil
}

// registeredBy is the node RegisteredByKey names for the image at rel, or
// "" for none.
func (p *pipeline) registeredBy(rel string) string {
	p.t.Helper()
	loc := location.Location{Account: p.state.UserUUID, Container: "images", Object: rel}.String()
	by, err := RegisteredBy(p.ctx, p.rdb, []string{loc})
	require.NoError(p.t, err)
	return by[loc]
}

func TestPipelineUploadsRegistersPublishesAndUploadsTheMetafile(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	p.write("sub/_template.meta", []byte(`{"is-public": true, "properties": {"OS": "debian", "Description": "{{.Name}} built {{.Dir}}"}}`))
	f := p.write("sub/deb 12 #1%.diskdump", make([]byte, 3*4096+10))

	up, err := p.catalog.UploadRequest(f, false)
	require.Equal(t, Enqueued, p.enqueue(up, err))
	info := p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
	prog, ok := DecodeProgress(info.Result)
	require.True(t, ok, "upload result: %s", info.Result)
	require.Equal(t, PhaseDone, prog.Phase)
	require.NotEmpty(t, prog.ObjectHash)

	var img *image.Image
	require.Eventually(t, func() bool { img = p.image("sub/deb 12 #1%.diskdump"); return img != nil }, 10*time.Second, 20*time.Millisecond)
	require.True(t, img.IsPublic)
	require.Equal(t, prog.ObjectHash, img.Checksum, "the image's checksum is the uploaded Merkle hash")
	require.Equal(t, map[string]string{"os": "debian", "description": "deb 12 #1% built sub"}, img.Properties)
	require.Eventually(t, func() bool { return p.registeredBy("sub/deb 12 #1%.diskdump") == "n1" }, 10*time.Second, 20*time.Millisecond,
		"the node that registered it is recorded")

	// The metafile beside the object is the registered image, reusable
	// as a template. It is written after the registration shows.
	var rc io.ReadCloser
	require.Eventually(t, func() bool {
		var err error
		rc, _, err = p.state.Pithos.GetObject(p.ctx, "images", "sub/deb 12 #1%.diskdump.meta", nil)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	body, _ := io.ReadAll(rc)
	rc.Close()
	var meta map[string]any
	require.NoError(t, json.Unmarshal(body, &meta), "%s", body)
	require.Equal(t, img.ID, meta["id"])
	require.Equal(t, "sub/deb 12 #1%.diskdump", meta["name"])
}

// A metafile edit can queue a registration before the image's upload has
// finished. That registration finds no object and completes; the upload's
// own registration must still run. It used to share the task id and be
// dropped as "done", leaving the image unregistered.
func TestRegistrationQueuedBeforeTheUploadDoesNotSwallowTheUploadsOwn(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	f := p.write("one.diskdump", []byte("some image bytes"))
	p.write("one.diskdump.meta", []byte(`{"name": "One", "properties": {"KIND": "test"}}`))

	early, err := p.catalog.RegisterRequest(f, "", "", "metafile", false)
	require.Equal(t, Enqueued, p.enqueue(early, err))
	info := p.wait(early.Queue, early.ID, asynq.TaskStateCompleted)
	prog, _ := DecodeProgress(info.Result)
	require.Contains(t, prog.Note, "not uploaded yet")
	require.Nil(t, p.image("One"))

	up, err := p.catalog.UploadRequest(f, false)
	p.enqueue(up, err)
	p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
	require.Eventually(t, func() bool { return p.image("One") != nil }, 10*time.Second, 20*time.Millisecond,
		"the upload's registration ran")
	require.Equal(t, "test", p.image("One").Properties["kind"])
}

func TestUploadOfAFileThatChangedSinceItWasQueuedIsSuperseded(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	f := p.write("a.diskdump", []byte("version one"))
	f.Size++ // as if the file grew after it settled
	up, err := p.catalog.UploadRequest(f, false)
	p.enqueue(up, err)
	info := p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
	prog, _ := DecodeProgress(info.Result)
	require.Contains(t, prog.Note, "superseded")
	require.Equal(t, int64(0), p.cloud.Stats().HashmapPuts, "nothing was sent for the stale task")
}

func TestPermanentFailuresAreArchivedWithAnActionableMessage(t *testing.T) {
	tests := []struct {
		name     string
		sandbox  sandbox.Config
		files    map[string]string
		image    string
		archived func(p *pipeline, f FileFacts) (queue, id string)
		want     []string
	}{
		{
			name:  "invalid metafile",
			files: map[string]string{"bad.diskdump.meta": "{\n  \"name\": \"x\",\n  \"disk-format\": diskdump\n}"},
			image: "bad.diskdump",
			archived: func(p *pipeline, f FileFacts) (string, string) {
				// The upload succeeds; its registration is what fails.
				up, err := p.catalog.UploadRequest(f, false)
				p.enqueue(up, err)
				p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
				reg, err := p.catalog.RegisterRequest(f, hashOf(p, "bad.diskdump"), "", "upload", false)
				require.NoError(p.t, err)
				return reg.Queue, reg.ID
			},
			want: []string{"bad.diskdump.meta:3:18", "invalid JSON", "fix the metafile"},
		},
		{
			name:  "unknown disk format",
			files: map[string]string{"fmt.diskdump.meta": `{"disk-format": "qcow2"}`},
			image: "fmt.diskdump",
			archived: func(p *pipeline, f FileFacts) (string, string) {
				up, err := p.catalog.UploadRequest(f, false)
				p.enqueue(up, err)
				p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
				reg, err := p.catalog.RegisterRequest(f, hashOf(p, "fmt.diskdump"), "", "upload", false)
				require.NoError(p.t, err)
				return reg.Queue, reg.ID
			},
			want: []string{"qcow2", "diskdump"},
		},
		{
			name:    "quota full",
			sandbox: sandbox.Config{Quota: 10000},
			image:   "big.diskdump",
			archived: func(p *pipeline, f FileFacts) (string, string) {
				up, err := p.catalog.UploadRequest(f, false)
				p.enqueue(up, err)
				return up.Queue, up.ID
			},
			want: []string{"not enough storage quota", "big.diskdump", "raise the pithos.diskspace quota"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipeline(t, tt.sandbox, "", config.Watch{})
			for rel, content := range tt.files {
				p.write(rel, []byte(content))
			}
			f := p.write(tt.image, make([]byte, 5*4096))
			queue, id := tt.archived(p, f)
			info := p.wait(queue, id, asynq.TaskStateArchived)
			for _, w := range tt.want {
				require.Contains(t, info.LastErr, w)
			}
			require.Nil(t, p.image(tt.image), "nothing is registered")
		})
	}
}

func TestABadTokenPausesTheQueues(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "not-a-valid-token", config.Watch{})
	f := p.write("a.diskdump", []byte("data"))
	up, err := p.catalog.UploadRequest(f, false)
	p.enqueue(up, err)
	require.Eventually(t, func() bool {
		qi, err := p.insp.GetQueueInfo(UploadQueue("n1"))
		return err == nil && qi.Paused
	}, 10*time.Second, 20*time.Millisecond, "the upload queue is paused")
	reason, err := p.rdb.Get(p.ctx, AuthPausedKey).Result()
	require.NoError(t, err)
	require.Contains(t, reason, "401")
	require.NotContains(t, reason, "not-a-valid-token", "the token is never recorded")
	p.wait(up.Queue, up.ID, asynq.TaskStateRetry) // it waits for a valid token instead of being archived
}

func hashOf(p *pipeline, object string) string {
	p.t.Helper()
	oi, err := p.state.Pithos.ObjectInfo(p.ctx, "images", object, nil)
	require.NoError(p.t, err)
	return oi.Hash
}

func TestUnregisterARemovedImageKeepsItsObject(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{UnregisterDeleted: true})
	f := p.write("gone.diskdump", []byte("bytes of an image"))
	back := p.write("back.diskdump", []byte("bytes of another image"))
	for _, ff := range []FileFacts{f, back} {
		up, err := p.catalog.UploadRequest(ff, false)
		p.enqueue(up, err)
	}
	require.Eventually(t, func() bool { return p.image("gone.diskdump") != nil && p.image("back.diskdump") != nil },
		10*time.Second, 20*time.Millisecond)

	require.NoError(t, os.Remove(f.AbsPath))
	req, err := p.catalog.UnregisterRequest(f.Root, f.RelPath, time.Now())
	p.enqueue(req, err)
	p.wait(req.Queue, req.ID, asynq.TaskStateCompleted)
	require.Nil(t, p.image("gone.diskdump"), "unregistered")
	require.Empty(t, p.registeredBy("gone.diskdump"), "no node registered it any more")
	require.Equal(t, "n1", p.registeredBy("back.diskdump"))
	_, err = p.state.Pithos.ObjectInfo(p.ctx, "images", "gone.diskdump", nil)
	require.NoError(t, err, "the object stays")

	// A file that is back by the time the task runs keeps its image.
	req, err = p.catalog.UnregisterRequest(back.Root, back.RelPath, time.Now())
	p.enqueue(req, err)
	info := p.wait(req.Queue, req.ID, asynq.TaskStateCompleted)
	prog, _ := DecodeProgress(info.Result)
	require.Contains(t, prog.Note, "the file is back")
	require.NotNil(t, p.image("back.diskdump"))
}
