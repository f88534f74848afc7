package jobs

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// Every job that reads a node's files goes to that node's queues; the jobs
// of shared roots and publishing go where every node takes them.
func TestCatalogRoutesJobsToTheNodeWithTheFiles(t *testing.T) {
	own, shared := t.TempDir(), t.TempDir()
	c := NewCatalog([]config.Watch{{Dir: own, Container: "images"}, {Dir: shared, Container: "images", Prefix: "s", Shared: true}}, "build-1")
	facts := func(root string) FileFacts {
		return FileFacts{Root: root, RelPath: "x.diskdump", Size: 5, ModTime: time.Unix(100, 0), Dev: 1, Inode: 2}
	}
	tests := []struct {
		root               string
		upload, reg, unreg string
		node               string
		shared             bool
	}{
		{own, "upload:build-1", "node:build-1", "node:build-1", "build-1", false},
		{shared, "upload", "default", "default", "", true},
	}
	for _, tt := range tests {
		up, err := c.UploadRequest(facts(tt.root), false)
		require.NoError(t, err)
		reg, err := c.RegisterRequest(facts(tt.root), "", "", "metafile", false)
		require.NoError(t, err)
		unreg, err := c.UnregisterRequest(tt.root, "x.diskdump", time.Now())
		require.NoError(t, err)
		assert.Equal(t, []string{tt.upload, tt.reg, tt.unreg}, []string{up.Queue, reg.Queue, unreg.Queue}, "root %s", tt.root)
		ref := reg.Payload.(RegisterPayload).ImageRef
		assert.Equal(t, tt.node, ref.Node)
		assert.Equal(t, tt.shared, ref.Shared)
		assert.Equal(t, QueueDefault, PublishRequest(ref, "id", false, nil, "after").Queue, "publish needs only its payload")
	}

	// Hosts mounting shared storage number its device differently: the
	// nodes must still agree on the task ids of a shared file.
	onHost := func(root string, dev uint64) FileFacts { f := facts(root); f.Dev = dev; return f }
	up1, _ := c.UploadRequest(onHost(shared, 41), false)
	up2, _ := c.UploadRequest(onHost(shared, 42), false)
	assert.Equal(t, up1.ID, up2.ID, "shared root: the device is not part of the identity")
	reg1, _ := c.RegisterRequest(onHost(shared, 41), "h", "", "upload", false)
	reg2, _ := c.RegisterRequest(onHost(shared, 42), "h", "", "upload", false)
	assert.Equal(t, reg1.ID, reg2.ID)
	up1, _ = c.UploadRequest(onHost(own, 41), false)
	up2, _ = c.UploadRequest(onHost(own, 42), false)
	assert.NotEqual(t, up1.ID, up2.ID, "own root: another device is another file")

	tick := time.Date(2026, 3, 4, 3, 0, 0, 0, time.UTC)
	sweeps := c.SweepRequests(tick)
	require.Len(t, sweeps, 2)
	assert.Equal(t, NodeQueue("build-1"), sweeps[0].Queue)
	assert.Equal(t, QueueDefault, sweeps[1].Queue)
	// Another node enqueues its own sweep, and the same shared one.
	other := NewCatalog([]config.Watch{{Dir: own, Container: "images"}, {Dir: shared, Container: "images", Prefix: "s", Shared: true}}, "build-2").SweepRequests(tick)
	assert.NotEqual(t, sweeps[0].ID, other[0].ID)
	assert.Equal(t, sweeps[1].ID, other[1].ID)
	assert.Len(t, NewCatalog([]config.Watch{{Dir: own, Container: "images"}}, "n").SweepRequests(tick), 1, "no shared roots: no shared sweep")

	for q, want := range map[string]string{"upload:build-1": "build-1", "node:b": "b", "upload": "", "default": "", "node:": ""} {
		n, ok := QueueNode(q)
		assert.Equal(t, want, n, q)
		assert.Equal(t, want != "", ok, q)
	}
}

// legacy turns a request into the task a syncd older than issue 11 queued:
// on default, without a node.
func legacy(t *testing.T, r Request) Request {
	t.Helper()
	switch p := r.Payload.(type) {
	case RegisterPayload:
		p.Node = ""
		r.Payload = p
	case UnregisterPayload:
		p.Node = ""
		r.Payload = p
	default:
		t.Fatalf("no legacy form for %T", p)
	}
	r.Queue = QueueDefault
	return r
}

// A registration an older syncd left on default is run by the node that has
// the very file it was made for, and by no other.
func TestLegacyRegistrationRunsOnTheNodeWithTheFile(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	p.nodes.Store(&[]string{"n2", "n1"})
	f := p.write("mine.diskdump", []byte("the image bytes of n1"))
	p.write("mine.diskdump.meta", []byte(`{"name": "Mine"}`))
	file, err := os.Open(f.AbsPath)
	require.NoError(t, err)
	_, err = p.state.Pithos.Upload(p.ctx, "images", "mine.diskdump", file, pithos.UploadOptions{})
	file.Close()
	require.NoError(t, err)

	reg, err := p.catalog.RegisterRequest(f, "", "", "metafile", false)
	old := legacy(t, reg)
	require.Equal(t, Enqueued, p.enqueue(old, err))
	info := p.wait(QueueDefault, old.ID, asynq.TaskStateCompleted)
	pr, ok := DecodeProgress(info.Result)
	require.True(t, ok)
	assert.Contains(t, pr.Note, "forwarded to node:n1, node:n2")

	// n1 (this node) runs its copy; n2's waits for n2.
	p.wait(NodeQueue("n1"), old.ID, asynq.TaskStateCompleted)
	require.Eventually(t, func() bool { return p.image("Mine") != nil }, 10*time.Second, 20*time.Millisecond)
	ti, err := p.insp.GetTaskInfo(NodeQueue("n2"), old.ID)
	require.NoError(t, err)
	assert.Equal(t, asynq.TaskStatePending, ti.State)
	var copied RegisterPayload
	require.NoError(t, json.Unmarshal(ti.Payload, &copied))
	assert.Equal(t, old.Payload, copied, "the copy is the task as it was")

	// A legacy registration of a file this node has with other content
	// (another node's file at the same path) is not run here.
	g := p.write("theirs.diskdump", []byte("n1's own bytes"))
	theirs := g
	theirs.Inode++ // the file the task was made for is another one
	reg2, err := p.catalog.RegisterRequest(theirs, "", "", "metafile", false)
	old2 := legacy(t, reg2)
	require.Equal(t, Enqueued, p.enqueue(old2, err))
	info = p.wait(NodeQueue("n1"), old2.ID, asynq.TaskStateCompleted)
	pr, ok = DecodeProgress(info.Result)
	require.True(t, ok)
	assert.Contains(t, pr.Note, "not this node's file")
	assert.Equal(t, int64(1), p.cloud.Stats().ImageRegisters, "only the file this node has was registered")
}

// A task naming another node is handed to that node's queue.
func TestTaskOfAnotherNodeIsForwarded(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	f := p.write("a.diskdump", []byte("bytes"))
	reg, err := NewCatalog(p.catalog.Roots(), "n2").RegisterRequest(f, "", "", "metafile", false)
	require.NoError(t, err)
	reg.Queue = NodeQueue("n1") // moved by hand
	p.enqueue(reg, nil)
	p.wait(NodeQueue("n1"), reg.ID, asynq.TaskStateCompleted)
	ti, err := p.insp.GetTaskInfo(NodeQueue("n2"), reg.ID)
	require.NoError(t, err)
	assert.Equal(t, asynq.TaskStatePending, ti.State)
	assert.Zero(t, p.cloud.Stats().ImageRegisters)
}

// A shared root's job taken by a node without that root fails with what to
// configure, instead of running on the wrong files.
func TestSharedRootMissingOnThisNode(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	f := p.write("s.diskdump", []byte("bytes"))
	sharedCat := NewCatalog([]config.Watch{{Dir: p.root + "-elsewhere", Container: "images", Shared: true}}, "n2")
	f.Root = p.root + "-elsewhere"
	reg, err := sharedCat.RegisterRequest(f, "", "", "metafile", false)
	require.NoError(t, err)
	p.enqueue(reg, nil)
	info := p.wait(QueueDefault, reg.ID, asynq.TaskStateArchived)
	assert.Contains(t, info.LastErr, "is not configured on node n1")
	assert.Contains(t, info.LastErr, "shared: true")
}

// The sweep of an older syncd (every root of whichever node took it) is
// split into one sweep per node, run on that node, and one of the shared
// roots.
func TestLegacySweepIsSplitPerNode(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	p.nodes.Store(&[]string{"n1", "n2"})
	p.write("a.diskdump", []byte("bytes"))
	tick := time.Date(2026, 3, 4, 3, 0, 0, 0, time.UTC).Format(time.RFC3339Nano)
	old := RepublishPayload{V: PayloadVersion, Tick: tick}
	p.enqueue(Request{Type: TypeRepublish, ID: RepublishTaskID(old), Queue: QueueDefault, Payload: old}, nil)
	p.wait(QueueDefault, RepublishTaskID(old), asynq.TaskStateCompleted)

	mine := SweepRequest(RepublishPayload{V: PayloadVersion, Tick: tick, Scope: SweepNodeRoots, Node: "n1"})
	info := p.wait(mine.Queue, mine.ID, asynq.TaskStateCompleted)
	var rep SweepReport
	require.NoError(t, json.Unmarshal(info.Result, &rep))
	assert.Equal(t, SweepNodeRoots, rep.Scope)
	require.Len(t, rep.Images, 1)
	assert.Equal(t, "a.diskdump", rep.Images[0].RelPath)

	theirs := SweepRequest(RepublishPayload{V: PayloadVersion, Tick: tick, Scope: SweepNodeRoots, Node: "n2"})
	ti, err := p.insp.GetTaskInfo(NodeQueue("n2"), theirs.ID)
	require.NoError(t, err)
	assert.Equal(t, asynq.TaskStatePending, ti.State, "n2's sweep waits for n2")
	shared := SweepRequest(RepublishPayload{V: PayloadVersion, Tick: tick, Scope: SweepSharedRoots})
	info = p.wait(QueueDefault, shared.ID, asynq.TaskStateCompleted)
	require.NoError(t, json.Unmarshal(info.Result, &rep))
	assert.Empty(t, rep.Images, "this node has no shared roots")
}

// An unregistration an older syncd left on default runs on the nodes that
// unregister removed files of that root.
func TestLegacyUnregistrationIsForwarded(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{UnregisterDeleted: true})
	f := p.write("gone.diskdump", []byte("bytes of an image that goes"))
	up, err := p.catalog.UploadRequest(f, false)
	p.enqueue(up, err)
	require.Eventually(t, func() bool { return p.image("gone.diskdump") != nil }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, os.Remove(f.AbsPath))
	req, err := p.catalog.UnregisterRequest(f.Root, f.RelPath, time.Now())
	old := legacy(t, req)
	p.enqueue(old, err)
	p.wait(QueueDefault, old.ID, asynq.TaskStateCompleted)
	p.wait(NodeQueue("n1"), old.ID, asynq.TaskStateCompleted)
	assert.Nil(t, p.image("gone.diskdump"), "unregistered")
}

// A shared root's upload leaves the device out of the task (hosts number
// one mount differently) and still opens the file it was made for, on
// whichever node runs it; it is registered from default.
func TestSharedRootUploadIgnoresTheDevice(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{Shared: true})
	f := p.write("s.diskdump", []byte("bytes of a shared image"))
	require.NotZero(t, f.Dev)
	up, err := p.catalog.UploadRequest(f, false)
	require.NoError(t, err)
	assert.Equal(t, QueueSharedUpload, up.Queue)
	assert.Zero(t, up.Payload.(UploadPayload).Dev)
	p.enqueue(up, nil)
	info := p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
	pr, _ := DecodeProgress(info.Result)
	assert.NotContains(t, pr.Note, "superseded")
	reg, err := p.catalog.RegisterRequest(f, pr.ObjectHash, "", "upload", false)
	require.NoError(t, err)
	p.wait(reg.Queue, reg.ID, asynq.TaskStateCompleted)
	require.NotNil(t, p.image("s.diskdump"))
	// Every node has a shared root's files: none is recorded as the one
	// that has them (RegisteredByKey).
	assert.Empty(t, p.registeredBy("s.diskdump"))
}
