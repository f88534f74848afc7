package jobs

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// sweepEnv is a sandbox cloud, a watch root and a miniredis queue.
type sweepEnv struct {
	t       *testing.T
	ctx     context.Context
	root    string
	watch   config.Watch
	catalog *Catalog
	session *cloud.Session
	state   *cloud.State
	rdb     *redis.Client
	enq     *Enqueuer
	insp    *asynq.Inspector
}

func newSweepEnv(t *testing.T, w config.Watch) *sweepEnv {
	t.Helper()
	ctx := context.Background()
	c := sandboxtest.Start(t, sandbox.Config{BlockSize: 4096})
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	e := &sweepEnv{t: t, ctx: ctx, root: filepath.Join(t.TempDir(), "images")}
	w.Dir = e.root
	if w.Container == "" {
		w.Container = "images"
	}
	e.watch = w
	e.catalog = NewCatalog([]config.Watch{w}, "n1")
	e.session = cloud.New(cloud.Options{AuthURL: c.AuthURL, Token: sandboxtest.Alice.Token})
	st, err := e.session.Get(ctx)
	require.NoError(t, err)
	e.state = st
	e.rdb = rdb
	e.enq = NewEnqueuer(rdb, "n1")
	e.insp = e.enq.Inspector()
	require.NoError(t, os.MkdirAll(e.root, 0o755))
	return e
}

func (e *sweepEnv) deps() SweepDeps {
	return SweepDeps{Catalog: e.catalog, Session: e.session, Enqueuer: e.enq}
}

func (e *sweepEnv) write(rel, content string) {
	e.t.Helper()
	p := filepath.Join(e.root, filepath.FromSlash(rel))
	require.NoError(e.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(e.t, os.WriteFile(p, []byte(content), 0o644))
}

func (e *sweepEnv) facts(rel string) FileFacts {
	e.t.Helper()
	f, err := StatImage(e.catalog.Roots(), filepath.Join(e.root, filepath.FromSlash(rel)))
	require.NoError(e.t, err)
	return f
}

// register uploads the image file and registers and publishes it through
// the image client, exactly as its metafiles say now.
func (e *sweepEnv) register(rel string) *image.Image {
	e.t.Helper()
	f := e.facts(rel)
	ref, err := e.catalog.Ref(f.Root, f.RelPath)
	require.NoError(e.t, err)
	file, err := os.Open(f.AbsPath)
	require.NoError(e.t, err)
	defer file.Close()
	_, err = e.state.Pithos.Upload(e.ctx, ref.Container, ref.Object, file, pithos.UploadOptions{})
	require.NoError(e.t, err)
	r, err := DesiredMetadata(e.catalog, ref, f.ModTime, nil)
	require.NoError(e.t, err)
	loc := location.Location{Account: e.state.UserUUID, Container: ref.Container, Object: ref.Object}
	img, _, err := e.state.Images.Reconcile(e.ctx, image.ReconcileRequest{Location: loc, Desired: r.Metadata})
	require.NoError(e.t, err)
	_, err = e.state.Images.Publish(e.ctx, img.ID, r.Metadata.IsPublic, r.Metadata.Members)
	require.NoError(e.t, err)
	return img
}

// tasks lists every task id in every queue.
func (e *sweepEnv) tasks() []string {
	e.t.Helper()
	queues, err := e.insp.Queues()
	require.NoError(e.t, err)
	var ids []string
	for _, q := range queues {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			e.insp.ListPendingTasks, e.insp.ListScheduledTasks, e.insp.ListRetryTasks, e.insp.ListArchivedTasks, e.insp.ListCompletedTasks,
		} {
			infos, err := list(q)
			require.NoError(e.t, err)
			for _, ti := range infos {
				ids = append(ids, ti.ID)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

func byRel(rep *SweepReport) map[string]SweepImage {
	m := map[string]SweepImage{}
	for _, im := range rep.Images {
		key := im.RelPath
		if key == "" {
			key = "orphan:" + im.Location
		}
		m[key] = im
	}
	return m
}

func TestSweepFindsTheDriftedImage(t *testing.T) {
	e := newSweepEnv(t, config.Watch{Defaults: map[string]any{"properties": map[string]any{"OSFAMILY": "linux"}}})
	e.write("a.diskdump", "image a")
	e.write("sub/b.diskdump", "image b")
	e.write("sub/_template.meta", `{"properties": {"OS": "debian"}, "name": "{{.Name}} image"}`)
	imgA := e.register("a.diskdump")
	imgB := e.register("sub/b.diskdump")
	assert.Equal(t, "b image", imgB.Name)

	rep, err := Sweep(e.ctx, e.deps(), SweepOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, e.state.UserUUID, rep.User)
	assert.Equal(t, map[SweepState]int{SweepInSync: 2}, rep.Counts)
	got := byRel(rep)
	assert.Equal(t, imgA.ID, got["a.diskdump"].ImageID)
	assert.Equal(t, imgB.ID, got["sub/b.diskdump"].ImageID)
	assert.Empty(t, got["a.diskdump"].Task, "nothing to do for an image in sync")
	assert.Nil(t, got["a.diskdump"].Members, "members are read only where they matter, unless asked")

	// The template changes: only the image under it drifts.
	e.write("sub/_template.meta", `{"properties": {"OS": "debian-12"}, "name": "{{.Name}} image"}`)
	rep, err = Sweep(e.ctx, e.deps(), SweepOptions{DryRun: true})
	require.NoError(t, err)
	got = byRel(rep)
	assert.Equal(t, SweepInSync, got["a.diskdump"].State)
	b := got["sub/b.diskdump"]
	assert.Equal(t, SweepDrifted, b.State)
	assert.Equal(t, []string{`property os: "debian" -> "debian-12"`}, b.Changes)
	wantReg, err := e.catalog.RegisterRequest(e.facts("sub/b.diskdump"), "", imgB.ID, "republish", true)
	require.NoError(t, err)
	assert.Equal(t, wantReg.ID, b.Task)
	assert.Empty(t, b.Outcome)
	assert.Empty(t, e.tasks(), "a dry run enqueues nothing")
	assert.Zero(t, rep.Enqueued)

	// For real: exactly b's registration is enqueued, forced.
	rep, err = Sweep(e.ctx, e.deps(), SweepOptions{})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Enqueued)
	assert.Equal(t, string(Enqueued), byRel(rep)["sub/b.diskdump"].Outcome)
	assert.Equal(t, []string{wantReg.ID}, e.tasks())
	ti, err := e.insp.GetTaskInfo(wantReg.Queue, wantReg.ID)
	require.NoError(t, err)
	assert.Equal(t, TypeRegister, ti.Type)
	var p RegisterPayload
	require.NoError(t, json.Unmarshal(ti.Payload, &p))
	assert.True(t, p.Force)
	assert.Equal(t, "republish", p.Reason)
	assert.Equal(t, imgB.ID, p.ObjectUUID)
	assert.Equal(t, "sub/b.diskdump", p.RelPath)

	// A second sweep (another daemon, or the next tick) adds nothing.
	rep, err = Sweep(e.ctx, e.deps(), SweepOptions{})
	require.NoError(t, err)
	assert.Zero(t, rep.Enqueued)
	assert.Equal(t, string(Queued), byRel(rep)["sub/b.diskdump"].Outcome)
	assert.Equal(t, []string{wantReg.ID}, e.tasks())

	// Force: every image, drifted or not.
	rep, err = Sweep(e.ctx, e.deps(), SweepOptions{Force: true})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Enqueued)
	aReg, err := e.catalog.RegisterRequest(e.facts("a.diskdump"), "", imgA.ID, "republish", true)
	require.NoError(t, err)
	assert.Equal(t, sorted(aReg.ID, wantReg.ID), e.tasks())
	assert.Equal(t, SweepInSync, byRel(rep)["a.diskdump"].State)
}

func TestSweepStates(t *testing.T) {
	e := newSweepEnv(t, config.Watch{})
	e.write("a.diskdump", "image a")
	e.write("pub.diskdump", "image pub")
	e.write("gone.diskdump", "image gone")
	imgA := e.register("a.diskdump")
	imgPub := e.register("pub.diskdump")
	imgGone := e.register("gone.diskdump")
	require.NoError(t, os.Remove(filepath.Join(e.root, "gone.diskdump")))

	// Drift made in the cloud: someone made an image public.
	_, err := e.state.Images.Publish(e.ctx, imgPub.ID, true, nil)
	require.NoError(t, err)
	// A metafile now wants a member.
	e.write("a.diskdump.meta", `{"members": ["`+sandboxtest.Bob.UUID+`"]}`)
	// New files: one unregistered, one with a broken metafile.
	e.write("new.diskdump", "image new")
	e.write("bad.diskdump", "image bad")
	e.write("bad.diskdump.meta", "{\n  \"disk-format\": \"vmdk\"\n}")
	e.write("broken.diskdump.meta", "{\n  \"name\": \n}")
	e.write("broken.diskdump", "image broken")
	require.NoError(t, os.Symlink("nowhere", filepath.Join(e.root, "dangling.diskdump")))

	rep, err := Sweep(e.ctx, e.deps(), SweepOptions{DryRun: true, Members: true})
	require.NoError(t, err)
	got := byRel(rep)
	require.Len(t, got, 6)

	a := got["a.diskdump"]
	assert.Equal(t, SweepDrifted, a.State)
	assert.Equal(t, []string{"member " + sandboxtest.Bob.UUID + ": add"}, a.Changes)
	assert.Equal(t, imgA.ID, a.ImageID)
	assert.Equal(t, []string{}, a.Members, "the owner is not a member")

	pub := got["pub.diskdump"]
	assert.Equal(t, SweepDrifted, pub.State)
	assert.Equal(t, []string{"is-public: true -> false"}, pub.Changes)
	assert.True(t, pub.Public)

	assert.Equal(t, SweepUnregistered, got["new.diskdump"].State)
	assert.Equal(t, "new.diskdump", got["new.diskdump"].Name)
	assert.Empty(t, got["new.diskdump"].ImageID)

	assert.Equal(t, SweepError, got["bad.diskdump"].State)
	assert.Contains(t, got["bad.diskdump"].Error, "vmdk")
	assert.Equal(t, SweepError, got["broken.diskdump"].State)
	assert.Contains(t, got["broken.diskdump"].Error, "broken.diskdump.meta:3:1")

	orphan := got["orphan:"+location.Location{Account: e.state.UserUUID, Container: "images", Object: "gone.diskdump"}.String()]
	assert.Equal(t, SweepOrphan, orphan.State)
	assert.Equal(t, imgGone.ID, orphan.ImageID)

	require.Len(t, rep.Problems, 1)
	assert.Contains(t, rep.Problems[0], "dangling.diskdump")
	assert.Equal(t, map[SweepState]int{SweepDrifted: 2, SweepUnregistered: 1, SweepError: 2, SweepOrphan: 1}, rep.Counts)
	assert.Empty(t, e.tasks())

	// For real: drifted images get their registration, the unregistered
	// one its upload; errors and orphans get nothing.
	rep, err = Sweep(e.ctx, e.deps(), SweepOptions{})
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Enqueued)
	up, err := e.catalog.UploadRequest(e.facts("new.diskdump"), false)
	require.NoError(t, err)
	got = byRel(rep)
	assert.Equal(t, up.ID, got["new.diskdump"].Task)
	assert.Len(t, e.tasks(), 3)
	ti, err := e.insp.GetTaskInfo(UploadQueue("n1"), up.ID)
	require.NoError(t, err)
	assert.Equal(t, TypeUpload, ti.Type)
}

func TestSweepUploadedButUnregistered(t *testing.T) {
	e := newSweepEnv(t, config.Watch{})
	e.write("x.diskdump", "image x")
	f := e.facts("x.diskdump")
	up, err := e.catalog.UploadRequest(f, false)
	require.NoError(t, err)
	// The upload completed earlier (its record is retained) but the image
	// is not registered: the sweep queues the registration directly.
	b, err := json.Marshal(up.Payload)
	require.NoError(t, err)
	_, err = e.enq.client.Enqueue(asynq.NewTask(TypeUpload, b), asynq.TaskID(up.ID), asynq.Queue(up.Queue), asynq.Retention(time.Hour))
	require.NoError(t, err)
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{Queues: map[string]int{up.Queue: 1}, LogLevel: asynq.FatalLevel, TaskCheckInterval: 10 * time.Millisecond})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
	require.Eventually(t, func() bool {
		ti, err := e.insp.GetTaskInfo(up.Queue, up.ID)
		return err == nil && ti.State == asynq.TaskStateCompleted
	}, 10*time.Second, 10*time.Millisecond)
	srv.Shutdown()

	rep, err := Sweep(e.ctx, e.deps(), SweepOptions{})
	require.NoError(t, err)
	reg, err := e.catalog.RegisterRequest(f, "", "", "republish", true)
	require.NoError(t, err)
	x := byRel(rep)["x.diskdump"]
	assert.Equal(t, SweepUnregistered, x.State)
	assert.Equal(t, reg.ID, x.Task)
	assert.Equal(t, string(Enqueued), x.Outcome)
}

func TestSweepNeedsAnEnqueuerUnlessDryRun(t *testing.T) {
	_, err := Sweep(context.Background(), SweepDeps{Catalog: NewCatalog(nil, "n1")}, SweepOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Enqueuer")
}

func TestDesiredMetadataPublicFlag(t *testing.T) {
	root := t.TempDir()
	ref := ImageRef{Root: root, RelPath: "a.diskdump", Container: "c", Object: "a.diskdump"}
	for _, tc := range []struct {
		name     string
		w        config.Watch
		metafile string
		want     bool
	}{
		{"default private", config.Watch{}, "", false},
		{"entry public", config.Watch{Public: true}, "", true},
		{"defaults override the entry", config.Watch{Public: true, Defaults: map[string]any{"is-public": false}}, "", false},
		{"metafile overrides", config.Watch{Public: true}, `{"is-public": "False"}`, false},
		{"metafile makes public", config.Watch{}, `{"is-public": true}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := filepath.Join(root, "a.diskdump.meta")
			_ = os.Remove(meta)
			if tc.metafile != "" {
				require.NoError(t, os.WriteFile(meta, []byte(tc.metafile), 0o644))
			}
			tc.w.Dir, tc.w.Container = root, "c"
			r, err := DesiredMetadata(NewCatalog([]config.Watch{tc.w}, "n1"), ref, time.Now(), nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, r.Metadata.IsPublic)
			assert.Equal(t, "a.diskdump", r.Metadata.Name)
		})
	}
	_, err := DesiredMetadata(NewCatalog(nil, "n1"), ref, time.Now(), nil)
	assert.Equal(t, Permanent, Classify(err))
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// Nodes that write under one remote folder from files only each of them
// has: a node's sweep lists the others' images as theirs, not as orphans.
func TestSweepTellsOtherNodesImagesFromOrphans(t *testing.T) {
	e := newSweepEnv(t, config.Watch{})
	for _, n := range []string{"mine-gone", "theirs", "unknown", "shared"} {
		e.write(n+".diskdump", "image "+n)
	}
	imgs := map[string]*image.Image{}
	for _, n := range []string{"mine-gone", "theirs", "unknown", "shared"} {
		imgs[n] = e.register(n + ".diskdump")
		require.NoError(t, os.Remove(filepath.Join(e.root, n+".diskdump")))
	}
	loc := func(n string) string {
		return location.Location{Account: e.state.UserUUID, Container: "images", Object: n + ".diskdump"}.String()
	}
	pipe := e.rdb.Pipeline()
	noteRegisteredBy(e.ctx, pipe, loc("mine-gone"), "n1") // this node: its file is gone
	noteRegisteredBy(e.ctx, pipe, loc("theirs"), "n2")
	noteRegisteredBy(e.ctx, pipe, loc("shared"), "n2")
	noteRegisteredBy(e.ctx, pipe, loc("shared"), "") // re-registered from a shared root
	_, err := pipe.Exec(e.ctx)
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		redis bool
		want  map[string]SweepState
	}{
		{"with the record", true, map[string]SweepState{"mine-gone": SweepOrphan, "theirs": SweepOtherNode, "unknown": SweepOrphan, "shared": SweepOrphan}},
		{"without Redis", false, map[string]SweepState{"mine-gone": SweepOrphan, "theirs": SweepOrphan, "unknown": SweepOrphan, "shared": SweepOrphan}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.deps()
			if tc.redis {
				d.Redis = e.rdb
			}
			rep, err := Sweep(e.ctx, d, SweepOptions{DryRun: true})
			require.NoError(t, err)
			got := byRel(rep)
			require.Len(t, got, len(tc.want))
			for n, state := range tc.want {
				im := got["orphan:"+loc(n)]
				assert.Equal(t, state, im.State, n)
				assert.Equal(t, imgs[n].ID, im.ImageID, n)
				if state == SweepOtherNode {
					assert.Equal(t, "n2", im.Node, n)
				} else {
					assert.Empty(t, im.Node, n)
				}
			}
		})
	}
}
