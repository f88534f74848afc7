package multinode

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/hashmap"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// TestNodeDownDelaysOnlyItsOwnImages SIGKILLs node b while it uploads its
// images: a's, c's and the shared images still complete (a shared task b
// held is put back for another node), b's wait, and syncctl nodes and
// status say they wait for b; once b is back they complete too. Every image
// ends registered once with its own node's metadata, and the blocks sent in
// all stay within one in-flight window (b's upload.files × upload.blocks) of
// the images' sizes.
func TestNodeDownDelaysOnlyItsOwnImages(t *testing.T) {
	const perNode, shared = 10, 10
	const small, big = 3*blockSize + 100, 24*blockSize + 100
	cloud, holds := daemontest.StartHoldableCloud(t, sandbox.Config{BlockSize: blockSize})
	c := newCluster(t, cloud, "a", "b", "c")
	c.fillNode("a", perNode, small)
	c.fillNode("c", perNode, small)
	c.fillShared(shared, small)
	want := c.expected(perNode, shared)
	var blocks int64
	for _, size := range []int{small, big, small, small} {
		blocks += perNode * hashmap.NumBlocks(int64(size), blockSize)
	}
	b := c.nodes["b"]
	window := int64(b.cfg.Upload.Files * b.cfg.Upload.Blocks)

	// b reaches the cloud as "localhost" (the sandbox names its endpoints
	// after the Host it is asked by), so that its requests can be told
	// apart. b starts alone, with only the shared images there, so that it
	// takes shared uploads: its first shared hashmap PUT is held, and its
	// other worker uploads the other shared images. Then b's own images
	// appear, and its block uploads are held after 8 more. b is then in the
	// middle of its own uploads and holds a shared task when it dies. (Had
	// b's own images been there from the start, b could have uploaded all
	// of them before its first shared one: its own queue weighs twice the
	// shared one, and nothing else decides.)
	b.cfg.Cloud.AuthURL = strings.Replace(b.cfg.Cloud.AuthURL, "127.0.0.1", "localhost", 1)
	daemontest.WriteConfig(t, b.cfg, b.cfgPath)
	fromB := func(r *http.Request) bool { return strings.HasPrefix(r.Host, "localhost:") }
	var heldShared, ownWritten atomic.Bool
	blocksPassed := 0
	sharedHold := holds.Before(func(r *http.Request) bool {
		if heldShared.Load() || !fromB(r) || !daemontest.IsHashmapPut(r) || !strings.Contains(r.URL.Path, "/images/shared/") {
			return false
		}
		heldShared.Store(true)
		return true
	})
	blockHold := holds.Before(func(r *http.Request) bool {
		if !ownWritten.Load() || !fromB(r) || !daemontest.IsBlockUpload(r) {
			return false
		}
		blocksPassed++
		return blocksPassed > 8
	})
	c.start("b").WaitRunning(t, 60*time.Second)
	waitHold := func(what string, h *daemontest.Hold) {
		t.Helper()
		select {
		case <-h.Arrived():
		case <-time.After(90 * time.Second):
			t.Fatalf("b was not held sending %s", what)
		}
	}
	waitHold("a shared upload", sharedHold)
	daemontest.Eventually(t, 60*time.Second, "b to register the shared images but the held one", func() bool {
		n := 0
		for _, im := range daemontest.Images(t, cloud) {
			if strings.HasPrefix(im.Name, "s-") {
				n++
			}
		}
		return n == shared-1
	})
	ownWritten.Store(true)
	c.fillNode("b", perNode, big)
	waitHold("its own blocks", blockHold)
	c.start("a")
	c.start("c")
	c.nodes["a"].proc.WaitRunning(t, 60*time.Second)
	c.nodes["c"].proc.WaitRunning(t, 60*time.Second)
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.redis.Addr})
	defer insp.Close()
	b.proc.Kill(t)
	killed := time.Now()
	var doneBefore int
	for _, im := range daemontest.Images(t, cloud) {
		if strings.HasPrefix(im.Name, "node b ") {
			doneBefore++
		}
	}
	t.Logf("node b killed holding a shared upload and its blocks, with %d blocks received and %d of its images registered", cloud.Stats().BlocksReceived, doneBefore)
	daemontest.Eventually(t, 10*time.Second, "the dead b's held requests to be dropped", func() bool { return holds.Waiting() == 0 })
	holds.ReleaseAll()

	isB := func(name string) bool { return strings.HasPrefix(name, "node b ") }
	notB := map[string]string{}
	for name, builtOn := range want {
		if !isB(name) {
			notB[name] = builtOn
		}
	}
	daemontest.Eventually(t, 90*time.Second, "a's, c's and the shared images registered without b", func() bool {
		n := 0
		for _, im := range daemontest.Images(t, cloud) {
			if _, ok := notB[im.Name]; ok {
				n++
			}
		}
		return n == len(notB)
	})
	t.Logf("a's, c's and the shared images done %s after b's kill", time.Since(killed).Round(100*time.Millisecond))
	logs := string(c.nodes["a"].proc.Log(t)) + string(c.nodes["c"].proc.Log(t))
	require.Contains(t, logs, "put back tasks a syncd that stopped heartbeating left running", "the shared upload b held was put back")
	var doneB int
	for _, im := range daemontest.Images(t, cloud) {
		if isB(im.Name) {
			doneB++
		}
	}
	require.Equal(t, doneBefore, doneB, "b's other images wait for b")
	require.Less(t, doneB, perNode)

	// syncctl, from node a, says that b is down and what waits for it.
	var nodesDoc ctl.NodesDoc
	daemontest.Eventually(t, 30*time.Second, "syncctl nodes to show b down", func() bool {
		c.syncctlJSON("a", &nodesDoc, "nodes")
		for _, n := range nodesDoc.Nodes {
			if n.Record.Node == "b" {
				return !n.Up && n.Waiting.Uploads+n.Waiting.Other > 0
			}
		}
		return false
	})
	up := map[string]bool{}
	for _, n := range nodesDoc.Nodes {
		up[n.Record.Node] = n.Up
	}
	assert.Equal(t, map[string]bool{"a": true, "b": false, "c": true}, up)
	out, code := c.syncctl("a", "status")
	require.Zero(t, code)
	require.Contains(t, out, "wait for node b, which is down (last seen", out)
	out, _ = c.syncctl("a", "nodes")
	t.Logf("syncctl nodes with b down:\n%s", out)
	require.Contains(t, out, "for node b, which is down")

	restarted := time.Now()
	c.start("b").WaitRunning(t, 60*time.Second)
	waitAllDone(t, c, len(want), 90*time.Second, "b's images registered after b's restart")
	t.Logf("b's images done %s after b's restart", time.Since(restarted).Round(100*time.Millisecond))

	imgs := daemontest.Images(t, cloud)
	if bad := checkMetadata(imgs, want); bad != "" {
		t.Fatalf("images registered wrong:\n%s", bad)
	}
	require.Empty(t, daemontest.HalfRegistered(t, cloud))
	require.Empty(t, daemontest.Tasks(t, insp, daemontest.StateArchived), "archived tasks")
	st := daemontest.Stats(t, cloud)
	t.Logf("blocks: %d received for %d in the images (window %d); %d registrations", st.BlocksReceived, blocks, window, st.ImageRegisters)
	assert.GreaterOrEqual(t, st.BlocksReceived, blocks)
	assert.LessOrEqual(t, st.BlocksReceived, blocks+window, "blocks sent beyond one in-flight window")
	// A registration b had posted when it died (answer not received) may
	// be posted again by the restarted b, onto the same image.
	assert.LessOrEqual(t, st.ImageRegisters, int64(len(want))+int64(fourGeneralWorkers), fmt.Sprint("registrations: ", st.ImageRegisters))
}

// fourGeneralWorkers is syncd's registration/publish concurrency: at most
// that many registrations of b can have been in flight at the kill.
const fourGeneralWorkers = 4
