package daemon

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/hashmap"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// e2eBlockSize keeps images small but many blocks long.
const e2eBlockSize = 4096

// merkle is the X-Object-Hash Pithos computes for data.
func merkle(t *testing.T, data []byte, blockSize int) string {
	t.Helper()
	var hashes []string
	for off := 0; off < len(data); off += blockSize {
		hashes = append(hashes, hashmap.BlockHash(data[off:min(off+blockSize, len(data))]))
	}
	root, err := hashmap.MerkleRoot(hashes)
	require.NoError(t, err)
	return root
}

// inspector opens the daemon's queue, wherever its Redis is.
func inspector(t *testing.T, cfg *config.Config, info Info) *asynq.Inspector {
	t.Helper()
	opt := asynq.RedisClientOpt{Addr: info.RedisAddr}
	if cfg.Redis.Addr != config.EmbeddedRedis {
		opt = asynq.RedisClientOpt{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB}
	}
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	return insp
}

// queueCounts sums the task states of the daemon's queues.
type queueCounts struct{ Unfinished, Completed, Archived int }

func countQueues(t *testing.T, insp *asynq.Inspector) queueCounts {
	t.Helper()
	var c queueCounts
	queues, err := insp.Queues()
	require.NoError(t, err)
	for _, q := range queues {
		qi, err := insp.GetQueueInfo(q)
		require.NoError(t, err, "queue %s", q)
		c.Unfinished += qi.Pending + qi.Active + qi.Scheduled + qi.Retry + qi.Aggregating
		c.Completed += qi.Completed
		c.Archived += qi.Archived
	}
	return c
}

// waitIdle waits until no task is waiting, running or due for a retry. It
// asserts nothing failed permanently.
func waitIdle(t *testing.T, insp *asynq.Inspector, node string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "the queues to drain", func() bool { return countQueues(t, insp).Unfinished == 0 })
	require.Zero(t, countQueues(t, insp).Archived, "no task may fail permanently")
}

// completedUploads counts the finished upload tasks of node.
func completedUploads(t *testing.T, insp *asynq.Inspector, node string) int {
	t.Helper()
	qi, err := insp.GetQueueInfo(jobs.UploadQueue(node))
	if err != nil {
		return 0 // no such queue yet
	}
	return qi.Completed
}

func props(im map[string]any) map[string]any {
	p, _ := im["properties"].(map[string]any)
	return p
}

// TestE2EMetafilesTemplatesAndOddNames drops three images (one with its own
// metafile, one under a folder template making it public, one with an awkward
// file name) and checks each ends registered as described, with checksum and
// .meta right; dropping the same files again registers and uploads nothing.
func TestE2EMetafilesTemplatesAndOddNames(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: e2eBlockSize})
	dir := t.TempDir()
	cfg := testConfig(t, cloud, dir)
	info := runDaemon(t, cfg, nil)
	insp := inspector(t, cfg, info)

	const oddRel = "odd name #1 100% ünïcødé.diskdump"
	writeFile(t, filepath.Join(dir, "alpha.diskdump.meta"), `{"name": "Alpha Linux", "properties": {"DESCRIPTION": "the alpha image"}}`)
	writeFile(t, filepath.Join(dir, "sub", "_template.meta"), `{"is-public": true, "properties": {"OS": "debian"}}`)
	content := map[string][]byte{
		"alpha.diskdump":    writeRandom(t, filepath.Join(dir, "alpha.diskdump"), 5*e2eBlockSize+100),
		"sub/beta.diskdump": writeRandom(t, filepath.Join(dir, "sub", "beta.diskdump"), 3*e2eBlockSize),
		oddRel:              writeRandom(t, filepath.Join(dir, oddRel), 2*e2eBlockSize+1),
	}
	totalBlocks := int64(6 + 3 + 3)

	want := map[string]struct {
		name   string
		public bool
		props  map[string]any
	}{
		"alpha.diskdump":    {"Alpha Linux", false, map[string]any{"osfamily": "linux", "description": "the alpha image"}},
		"sub/beta.diskdump": {"sub/beta.diskdump", true, map[string]any{"osfamily": "linux", "os": "debian"}},
		oddRel:              {oddRel, false, map[string]any{"osfamily": "linux"}},
	}
	eventually(t, 30*time.Second, "three images registered", func() bool { return len(images(t, cloud, cloud.User)) == 3 })
	waitIdle(t, insp, cfg.Node, 30*time.Second)

	ids := map[string]string{}
	imgs := images(t, cloud, cloud.User)
	require.Len(t, imgs, 3)
	for rel, w := range want {
		im := imageByName(imgs, w.name)
		require.NotNil(t, im, "image %q for %s; have %v", w.name, rel, imgs)
		require.Equal(t, w.public, im["is_public"], "is_public of %s", rel)
		require.Equal(t, w.props, props(im), "properties of %s", rel)
		require.Equal(t, float64(len(content[rel])), im["size"], "size of %s", rel)
		require.Equal(t, "diskdump", im["disk_format"], rel)

		h := objectHead(t, cloud, "images", rel)
		require.NotNil(t, h, "object %s", rel)
		require.Equal(t, merkle(t, content[rel], e2eBlockSize), h.Get("X-Object-Hash"), "object hash of %s", rel)
		require.Equal(t, h.Get("X-Object-Hash"), im["checksum"], "checksum of %s", rel)
		require.Equal(t, h.Get("X-Object-Uuid"), im["id"], "image id of %s is its object's uuid", rel)
		require.Equal(t, content[rel], objectGet(t, cloud, "images", rel), "stored bytes of %s", rel)

		var meta map[string]any
		require.NoError(t, json.Unmarshal(objectGet(t, cloud, "images", rel+".meta"), &meta), "%s.meta", rel)
		require.Equal(t, im["id"], meta["id"], "%s.meta id", rel)
		require.Equal(t, w.name, meta["name"], "%s.meta name", rel)
		require.Equal(t, im["checksum"], meta["checksum"], "%s.meta checksum", rel)
		// kamaki's .meta is the register reply's headers: Python bools as text.
		require.Equal(t, map[bool]string{true: "True", false: "False"}[w.public], meta["is-public"], "%s.meta is-public", rel)
		ids[rel] = im["id"].(string)
	}
	before := cloud.Stats()
	require.Equal(t, totalBlocks, before.BlocksReceived, "each block sent once")
	// One image per object (ids checked above), registered with one POST
	// each: a metafile-triggered registration and the upload's own are
	// serialised per image, so the second finds nothing to change.
	require.Equal(t, int64(3), before.ImageRegisters)
	require.Equal(t, 3, completedUploads(t, insp, cfg.Node))

	// Drop the same files again: a touch, a rewrite in place with the same
	// bytes, and a copy replacing the file (new inode).
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "alpha.diskdump"), later, later))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "beta.diskdump"), content["sub/beta.diskdump"], 0o644))
	tmp := filepath.Join(dir, ".incoming.tmp")
	require.NoError(t, os.WriteFile(tmp, content[oddRel], 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, oddRel)))

	// Each changed file is checked again (a HEAD finds the object already
	// holds its content, so nothing is written) and re-registered from the
	// same metadata.
	eventually(t, 30*time.Second, "the re-dropped files to be uploaded again", func() bool {
		return completedUploads(t, insp, cfg.Node) == 6
	})
	waitIdle(t, insp, cfg.Node, 30*time.Second)

	after := cloud.Stats()
	require.Equal(t, before.BlocksReceived, after.BlocksReceived, "no block uploaded for unchanged content")
	require.Equal(t, before.HashmapPuts, after.HashmapPuts, "no hashmap PUT: the objects already hold this content")
	require.Equal(t, before.ImageRegisters, after.ImageRegisters, "nothing registered anew")
	imgs = images(t, cloud, cloud.User)
	require.Len(t, imgs, 3)
	for rel, w := range want {
		im := imageByName(imgs, w.name)
		require.NotNil(t, im, w.name)
		require.Equal(t, ids[rel], im["id"], "same image id for %s", rel)
		require.Equal(t, w.public, im["is_public"], "is_public of %s", rel)
		require.Equal(t, w.props, props(im), "properties of %s", rel)
	}
}

// TestE2ESlowWriteUploadedOnce writes an image in chunks with pauses shorter
// than the settle time: it must be uploaded once, whole, after it settles.
func TestE2ESlowWriteUploadedOnce(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: e2eBlockSize})
	dir := t.TempDir()
	cfg := testConfig(t, cloud, dir)
	cfg.Settle = config.Duration(time.Second)
	info := runDaemon(t, cfg, nil)
	insp := inspector(t, cfg, info)

	path := filepath.Join(dir, "slow.diskdump")
	f, err := os.Create(path)
	require.NoError(t, err)
	var data []byte
	const chunks, pause = 12, 300 * time.Millisecond // 3.6s of writing, settle 1s
	for i := range chunks {
		chunk := writeRandomBytes(e2eBlockSize + 512)
		_, err := f.Write(chunk)
		require.NoError(t, err)
		data = append(data, chunk...)
		if i < chunks-1 {
			time.Sleep(pause)
		}
		require.Empty(t, images(t, cloud, cloud.User), "registered after %d of %d chunks", i+1, chunks)
		require.Zero(t, cloud.Stats().HashmapPuts, "upload started after %d of %d chunks", i+1, chunks)
	}
	require.NoError(t, f.Close())

	eventually(t, 30*time.Second, "the image registered", func() bool { return len(images(t, cloud, cloud.User)) == 1 })
	waitIdle(t, insp, cfg.Node, 30*time.Second)

	im := images(t, cloud, cloud.User)[0]
	require.Equal(t, "slow.diskdump", im["name"])
	require.Equal(t, float64(len(data)), im["size"])
	require.Equal(t, merkle(t, data, e2eBlockSize), im["checksum"])
	require.Equal(t, data, objectGet(t, cloud, "images", "slow.diskdump"))

	st := cloud.Stats()
	blocks := hashmap.NumBlocks(int64(len(data)), e2eBlockSize)
	require.Equal(t, 1, completedUploads(t, insp, cfg.Node), "one upload task")
	require.Equal(t, int64(2), st.HashmapPuts, "one upload: a 409 hashmap PUT, then the final one")
	require.Equal(t, blocks, st.BlocksReceived, "every block sent once")
	require.Equal(t, int64(1), st.ImageRegisters)
}

// TestE2EFailRate runs ten images through a sandbox answering 20% of block
// uploads and hashmap PUTs with 503: all must end registered and correct.
func TestE2EFailRate(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: e2eBlockSize, FailRate: 0.2})
	dir := t.TempDir()
	cfg := testConfig(t, cloud, dir)
	info := runDaemon(t, cfg, nil)
	insp := inspector(t, cfg, info)

	content := map[string][]byte{}
	var blocks int64
	for i := range 10 {
		name := fmt.Sprintf("img-%02d.diskdump", i)
		size := (i%4+2)*e2eBlockSize + i*7
		content[name] = writeRandom(t, filepath.Join(dir, name), size)
		blocks += hashmap.NumBlocks(int64(size), e2eBlockSize)
	}

	eventually(t, 60*time.Second, "ten images registered", func() bool { return len(images(t, cloud, cloud.User)) == 10 })
	waitIdle(t, insp, cfg.Node, 60*time.Second)

	imgs := images(t, cloud, cloud.User)
	require.Len(t, imgs, 10)
	for name, data := range content {
		im := imageByName(imgs, name)
		require.NotNil(t, im, name)
		require.Equal(t, merkle(t, data, e2eBlockSize), im["checksum"], "checksum of %s", name)
		require.Equal(t, float64(len(data)), im["size"], "size of %s", name)
		require.Equal(t, map[string]any{"osfamily": "linux"}, props(im), name)
		require.Equal(t, data, objectGet(t, cloud, "images", name), "stored bytes of %s", name)
		require.NotNil(t, objectHead(t, cloud, "images", name+".meta"), "%s.meta", name)
	}
	st := cloud.Stats()
	require.Positive(t, st.FaultsInjected, "the sandbox injected faults")
	require.GreaterOrEqual(t, st.BlocksReceived, blocks, "every block stored")
	require.Equal(t, int64(10), st.ImageRegisters, "each image registered once")
	t.Logf("faults injected: %d, blocks received %d of %d", st.FaultsInjected, st.BlocksReceived, blocks)
}

func writeRandomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
