//go:build linux

package inspect_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/inspect"
)

func TestDetectorCachesPerContent(t *testing.T) {
	disk := debianDisk(t, nil)
	cacheDir := filepath.Join(t.TempDir(), "inspect")
	d, err := inspect.NewDetector(cacheDir, inspect.Limits{})
	require.NoError(t, err)
	ctx := context.Background()

	first, err := d.File(ctx, disk)
	require.NoError(t, err)
	assert.False(t, first.Cached)
	assert.Equal(t, "debian", first.Properties[inspect.OS])
	fi, err := os.Stat(disk)
	require.NoError(t, err)
	assert.Equal(t, fi.Size(), first.Identity.Size)
	assert.Equal(t, fi.ModTime().UnixNano(), first.Identity.MtimeNs)

	second, err := d.File(ctx, disk)
	require.NoError(t, err)
	assert.True(t, second.Cached, "the same content is inspected once")
	assert.Equal(t, first.Properties, second.Properties)
	assert.Equal(t, first.Evidence, second.Evidence)

	// Another process sharing the directory sees it too.
	d2, err := inspect.NewDetector(cacheDir, inspect.Limits{})
	require.NoError(t, err)
	third, err := d2.File(ctx, disk)
	require.NoError(t, err)
	assert.True(t, third.Cached)

	// New content (here: the same bytes, a new mtime) is inspected again.
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(disk, later, later))
	fourth, err := d.File(ctx, disk)
	require.NoError(t, err)
	assert.False(t, fourth.Cached)
	assert.Equal(t, later.UnixNano(), fourth.Identity.MtimeNs)

	// A corrupt entry is a miss, and is replaced.
	entries, err := filepath.Glob(filepath.Join(cacheDir, "*.json"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "one entry per file")
	require.NoError(t, os.WriteFile(entries[0], []byte("{not json"), 0o600))
	fifth, err := d.File(ctx, disk)
	require.NoError(t, err)
	assert.False(t, fifth.Cached)
	sixth, err := d.File(ctx, disk)
	require.NoError(t, err)
	assert.True(t, sixth.Cached)

	fi, err = os.Stat(disk)
	require.NoError(t, err)
	require.NoError(t, d.Forget(fi))
	seventh, err := d.File(ctx, disk)
	require.NoError(t, err)
	assert.False(t, seventh.Cached)
}

func TestDetectorWithoutCache(t *testing.T) {
	disk := debianDisk(t, nil)
	d, err := inspect.NewDetector("", inspect.Limits{})
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		r, err := d.File(context.Background(), disk)
		require.NoError(t, err)
		assert.False(t, r.Cached)
		assert.Equal(t, "linux", r.Properties[inspect.OSFamily])
	}
	_, err = d.File(context.Background(), filepath.Join(t.TempDir(), "missing.diskdump"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = d.File(context.Background(), t.TempDir())
	assert.ErrorContains(t, err, "not a regular file")
}

// TestDetectorUnwritableCache: a cache that cannot be written (syncctl run
// by a user who cannot write syncd's state dir) only costs a re-read.
func TestDetectorUnwritableCache(t *testing.T) {
	disk := debianDisk(t, nil)
	dir := filepath.Join(t.TempDir(), "inspect")
	d, err := inspect.NewDetector(dir, inspect.Limits{})
	require.NoError(t, err)
	// Even root cannot create files under a regular file.
	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.WriteFile(dir, nil, 0o600))
	for i := 0; i < 2; i++ {
		r, err := d.File(context.Background(), disk)
		require.NoError(t, err)
		assert.False(t, r.Cached)
		assert.Equal(t, "linux", r.Properties[inspect.OSFamily])
	}
}

func TestReadOnlyDetector(t *testing.T) {
	disk := debianDisk(t, nil)
	dir := filepath.Join(t.TempDir(), "inspect")
	ro := inspect.NewReadOnlyDetector(dir, inspect.Limits{})
	r, err := ro.File(context.Background(), disk)
	require.NoError(t, err)
	assert.False(t, r.Cached)
	assert.NoDirExists(t, dir, "a read-only detector creates nothing")

	rw, err := inspect.NewDetector(dir, inspect.Limits{})
	require.NoError(t, err)
	_, err = rw.File(context.Background(), disk)
	require.NoError(t, err)
	ro = inspect.NewReadOnlyDetector(dir, inspect.Limits{})
	r, err = ro.File(context.Background(), disk)
	require.NoError(t, err)
	assert.True(t, r.Cached, "it reads what the daemon stored")
	later := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(disk, later, later))
	_, err = ro.File(context.Background(), disk)
	require.NoError(t, err)
	r, err = rw.File(context.Background(), disk)
	require.NoError(t, err)
	assert.False(t, r.Cached, "the read-only detector stored nothing")
}
