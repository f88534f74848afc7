package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// makeTree writes n small images spread over nested directories under
// dir/top and returns their relative paths.
func makeTree(t *testing.T, dir, top string, n int) []string {
	t.Helper()
	rels := make([]string, 0, n)
	for i := range n {
		rel := fmt.Sprintf("%s/d%02d/e%d/img%05d.diskdump", top, i%25, i%4, i)
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if i < 100 {
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		}
		require.NoError(t, os.WriteFile(p, []byte{byte(i)}, 0o644))
		rels = append(rels, rel)
	}
	return rels
}

func TestTenThousandFiles(t *testing.T) {
	t.Parallel()
	dir := fastTempDir(t)
	start0 := time.Now()
	want := makeTree(t, dir, "before", 5000) // found by the initial walk
	t.Logf("5000 files written in %s", time.Since(start0))
	o := opts(t, dir)
	o.Settle = 200 * time.Millisecond
	h := start(t, o)
	h.waitScans(1)
	t.Logf("initial scan done after %s", time.Since(start0))
	want = append(want, makeTree(t, dir, "during", 5000)...) // found via events
	t.Logf("5000 more files written after %s", time.Since(start0))

	evs := h.waitFor("10,000 images", func(evs []stamped) bool { return len(only[ImageReady](evs)) >= len(want) })
	t.Logf("all reported after %s", time.Since(start0))
	got := readyPaths(evs)
	slices.Sort(got)
	slices.Sort(want)
	assert.Equal(t, want, got, "each image reported exactly once") // ElementsMatch is quadratic

	evs = h.rescan(false)
	assert.Len(t, only[ImageReady](evs), len(want), "an unchanged tree's rescan reports nothing")
	rd := only[RescanDone](evs)
	assert.Equal(t, len(want), rd[len(rd)-1].Images)
	t.Logf("rescan of %d files took %s; whole test %s", len(want), rd[len(rd)-1].Duration, time.Since(start0))
	assert.Empty(t, only[Error](evs))
	assert.Empty(t, only[ImageRemoved](evs))
}
