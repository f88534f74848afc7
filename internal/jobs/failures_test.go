package jobs

import (
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// archivedIDs lists the archived tasks of every queue.
func (p *pipeline) archivedIDs() []string {
	p.t.Helper()
	var ids []string
	for _, q := range []string{UploadQueue("n1"), NodeQueue("n1"), QueueDefault} {
		tasks, err := p.insp.ListArchivedTasks(q)
		if err != nil {
			continue
		}
		for _, ti := range tasks {
			ids = append(ids, ti.ID)
		}
	}
	return ids
}

// A file removed or renamed away before its upload ran leaves nothing to
// fix: the upload completes saying so, and is not archived as a failure.
func TestAFileGoneBeforeItsUploadIsNotAFailure(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	f := p.write("renamed.diskdump", []byte("an image renamed before its upload ran"))
	up, err := p.catalog.UploadRequest(f, false)
	require.NoError(t, err)
	require.NoError(t, os.Rename(f.AbsPath, f.AbsPath+".old"))
	p.enqueue(up, nil)
	info := p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
	prog, _ := DecodeProgress(info.Result)
	assert.Contains(t, prog.Note, "gone")
	assert.Empty(t, p.archivedIDs())
	assert.Zero(t, p.cloud.Stats().HashmapPuts)
}

// A bad metafile leaves one failure for the image however often it is
// edited and still bad; once it is fixed and the image registered, the
// failure is gone without `syncctl retry`.
func TestOneFailurePerImageAndKindThatClearsOnceFixed(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	p.write("img.diskdump.meta", []byte(`{"disk-format": "qcow2"}`))
	f := p.write("img.diskdump", make([]byte, 3*4096))
	up, err := p.catalog.UploadRequest(f, false)
	p.enqueue(up, err)
	p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
	hash := hashOf(p, "img.diskdump")
	first, err := p.catalog.RegisterRequest(f, hash, "", "upload", false)
	require.NoError(t, err)
	p.wait(first.Queue, first.ID, asynq.TaskStateArchived)
	require.Equal(t, []string{first.ID}, p.archivedIDs())

	// Edited, still bad: the newer failure replaces the older one.
	p.write("img.diskdump.meta", []byte(`{"disk-format": "vmdk"}`))
	second, err := p.catalog.RegisterRequest(f, hash, "", "metafile", false)
	require.NotEqual(t, first.ID, second.ID)
	p.enqueue(second, err)
	p.wait(second.Queue, second.ID, asynq.TaskStateArchived)
	require.Eventually(t, func() bool { return len(p.archivedIDs()) == 1 }, 10*time.Second, 20*time.Millisecond,
		"one failure per image and kind: %v", p.archivedIDs())
	assert.Equal(t, []string{second.ID}, p.archivedIDs())

	// Fixed: the registration succeeds and the failure clears itself.
	p.write("img.diskdump.meta", []byte(`{"name": "Fixed"}`))
	fixed, err := p.catalog.RegisterRequest(f, hash, "", "metafile", false)
	p.enqueue(fixed, err)
	p.wait(fixed.Queue, fixed.ID, asynq.TaskStateCompleted)
	require.NotNil(t, p.image("Fixed"))
	require.Eventually(t, func() bool { return len(p.archivedIDs()) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the fixed failure is gone: %v", p.archivedIDs())
}

// A failed upload is cleared by the image's removal (Resolve, as the
// daemon calls it when the watcher reports the file gone), and a failure
// sent back to the queue by an operator is not deleted under them.
func TestFailuresOfAnImageGoWithItsFile(t *testing.T) {
	p := newPipeline(t, sandbox.Config{Quota: 10000}, "", config.Watch{})
	f := p.write("big.diskdump", make([]byte, 5*4096))
	up, err := p.catalog.UploadRequest(f, false)
	p.enqueue(up, err)
	p.wait(up.Queue, up.ID, asynq.TaskStateArchived)
	require.Eventually(t, func() bool {
		n, _ := p.rdb.HLen(p.ctx, failuresPrefix+"/images/big.diskdump").Result()
		return n == 1
	}, 10*time.Second, 20*time.Millisecond, "the failure is indexed")

	require.NoError(t, os.Remove(f.AbsPath))
	ref, err := p.catalog.Ref(f.Root, f.RelPath)
	require.NoError(t, err)
	require.NoError(t, p.enq.Failures().Resolve(p.ctx, ref.Location()))
	assert.Empty(t, p.archivedIDs())
	n, err := p.rdb.Exists(p.ctx, failuresPrefix+ref.Location()).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left in the index")
}
