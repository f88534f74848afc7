package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// archivedTasks lists the archived tasks of every queue.
func archivedTasks(t *testing.T, insp *asynq.Inspector) []*asynq.TaskInfo {
	t.Helper()
	queues, err := insp.Queues()
	require.NoError(t, err)
	var out []*asynq.TaskInfo
	for _, q := range queues {
		ts, err := insp.ListArchivedTasks(q)
		require.NoError(t, err)
		out = append(out, ts...)
	}
	return out
}

// TestFailuresAreCurrentProblemsOnly is issue 16's reproduction: a bad
// metafile dropped with its image is one failure (not the upload's
// registration and the metafile's both); fixing the metafile clears it
// without `syncctl retry`; a failure of an image whose file is then removed
// goes with the file.
func TestFailuresAreCurrentProblemsOnly(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := testConfig(t, cloud, dir)
	writeFile(t, filepath.Join(dir, "bad.diskdump.meta"), `{"disk-format": "qcow2"}`)
	writeRandom(t, filepath.Join(dir, "bad.diskdump"), 20<<10)
	writeFile(t, filepath.Join(dir, "doomed.diskdump.meta"), `{"name": "x", "disk-format": diskdump}`)
	writeRandom(t, filepath.Join(dir, "doomed.diskdump"), 10<<10)

	info, stop := startDaemon(t, cfg, nil)
	insp := inspector(t, cfg, info)
	eventually(t, 60*time.Second, "both registrations to fail", func() bool { return len(archivedTasks(t, insp)) >= 2 })
	eventually(t, 60*time.Second, "the queues to drain", func() bool { return countQueues(t, insp).Unfinished == 0 })
	require.Len(t, archivedTasks(t, insp), 2, "one failure per image: %v", archivedTasks(t, insp))

	// A restart finds the same metafiles: still one failure per image.
	stop()
	core, logs := observer.New(zapcore.InfoLevel)
	info, _ = startDaemon(t, cfg, zap.New(core))
	insp = inspector(t, cfg, info)
	eventually(t, 60*time.Second, "both images reported again", func() bool { return logs.FilterMessage("image ready").Len() >= 2 })
	waitQuiet(t, insp, 2*time.Second)
	require.Len(t, archivedTasks(t, insp), 2, "one failure per image after a restart: %v", archivedTasks(t, insp))

	writeFile(t, filepath.Join(dir, "bad.diskdump.meta"), `{"name": "Good now"}`)
	eventually(t, 60*time.Second, "the fixed image registered", func() bool {
		return imageByName(images(t, cloud, cloud.User), "Good now") != nil
	})
	eventually(t, 30*time.Second, "the fixed failure to clear itself", func() bool { return len(archivedTasks(t, insp)) == 1 })

	require.NoError(t, os.Remove(filepath.Join(dir, "doomed.diskdump")))
	eventually(t, 30*time.Second, "the removed image's failure to go", func() bool { return len(archivedTasks(t, insp)) == 0 })
}
