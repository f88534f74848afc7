package jobs

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/watch"
)

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

func relPaths(fs []FileFacts) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Root+"|"+f.RelPath)
	}
	return out
}

func TestScanFollowsTheWatcherRules(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "images")
	for _, p := range []string{
		"a.diskdump", "sub/b.diskdump", "sub/deeper/c d #%?.diskdump", "ünï.diskdump",
		"a.diskdump.meta", "_template.meta", "sub/_template.meta",
		".hidden.diskdump", "x.diskdump.part", "x.diskdump.tmp", "y.diskdump~",
		".hiddendir/c.diskdump", "dl.tmp/d.diskdump", "other.txt", "sub/notes.diskdump.txt",
	} {
		writeFile(t, filepath.Join(root, p), "data:"+p)
	}
	require.NoError(t, os.Symlink("a.diskdump", filepath.Join(root, "link.diskdump")))
	require.NoError(t, os.Symlink("sub", filepath.Join(root, "linkdir")))
	require.NoError(t, os.Symlink(root, filepath.Join(root, "sub", "loopdir")))
	require.NoError(t, os.Symlink("nowhere", filepath.Join(root, "broken.diskdump")))
	require.NoError(t, os.Symlink("loop.diskdump", filepath.Join(root, "loop.diskdump")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "fifo.diskdump"), 0o644))

	res, err := Scan(context.Background(), []config.Watch{{Dir: root, Container: "images"}})
	require.NoError(t, err)
	assert.Equal(t, []string{
		root + "|a.diskdump", root + "|link.diskdump", root + "|sub/b.diskdump",
		root + "|sub/deeper/c d #%?.diskdump", root + "|ünï.diskdump",
	}, relPaths(res.Images))

	var problems []string
	for _, p := range res.Problems {
		problems = append(problems, p.RelPath)
		assert.Equal(t, root, p.Root)
		assert.Equal(t, filepath.Join(root, p.RelPath), p.Path)
		assert.Contains(t, p.Error(), "broken symlink")
	}
	assert.ElementsMatch(t, []string{"broken.diskdump", "loop.diskdump"}, problems)

	// Facts are the watcher's: a symlinked file is the target's content
	// under the link's name, with the target's identity.
	target, err := os.Stat(filepath.Join(root, "a.diskdump"))
	require.NoError(t, err)
	st := target.Sys().(*syscall.Stat_t)
	for _, f := range res.Images[:2] {
		assert.Equal(t, target.Size(), f.Size)
		assert.Equal(t, target.ModTime().UnixNano(), f.ModTime.UnixNano())
		assert.Equal(t, uint64(st.Dev), f.Dev)
		assert.Equal(t, uint64(st.Ino), f.Inode)
	}
	assert.Equal(t, filepath.Join(root, "link.diskdump"), res.Images[1].AbsPath)
}

func TestScanPatternsRootsAndProblems(t *testing.T) {
	dir := t.TempDir()
	r1 := filepath.Join(dir, "r1")
	r2 := filepath.Join(dir, "r2")
	writeFile(t, filepath.Join(r1, "x.img"), "x")
	writeFile(t, filepath.Join(r1, "x.img.meta"), "{}")
	writeFile(t, filepath.Join(r1, "y.diskdump"), "y")
	writeFile(t, filepath.Join(r2, "z.diskdump"), "z")
	// A root reached through a symlink is walked (the watcher stats roots).
	require.NoError(t, os.Symlink(r2, filepath.Join(dir, "r2link")))
	missing := filepath.Join(dir, "missing")
	file := filepath.Join(r1, "x.img")

	res, err := Scan(context.Background(), []config.Watch{
		{Dir: missing, Container: "c"},
		{Dir: r1, Container: "c", Patterns: []string{"*.img"}},
		{Dir: file, Container: "c"},
		{Dir: filepath.Join(dir, "r2link"), Container: "c"},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{r1 + "|x.img", filepath.Join(dir, "r2link") + "|z.diskdump"}, relPaths(res.Images))
	assert.Equal(t, filepath.Join(dir, "r2link", "z.diskdump"), res.Images[1].AbsPath)
	require.Len(t, res.Problems, 2)
	assert.Equal(t, missing, res.Problems[0].Root)
	assert.ErrorIs(t, res.Problems[0], os.ErrNotExist)
	assert.Contains(t, res.Problems[1].Error(), "not a directory")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Scan(ctx, []config.Watch{{Dir: r1, Container: "c"}})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestStatImage(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "images")
	nested := filepath.Join(root, "nested")
	writeFile(t, filepath.Join(root, "a.diskdump"), "a")
	writeFile(t, filepath.Join(root, "sub", "b.diskdump"), "b")
	writeFile(t, filepath.Join(nested, "n.diskdump"), "n")
	writeFile(t, filepath.Join(root, ".tmpdir", "h.diskdump"), "h")
	writeFile(t, filepath.Join(root, "notes.txt"), "t")
	writeFile(t, filepath.Join(dir, "outside.diskdump"), "o")
	require.NoError(t, os.Symlink(filepath.Join(root, "sub"), filepath.Join(root, "linkdir")))
	require.NoError(t, os.Symlink(root, filepath.Join(dir, "alias")))
	roots := []config.Watch{{Dir: root, Container: "images"}, {Dir: nested, Container: "nested"}}

	res, err := Scan(context.Background(), roots[:1])
	require.NoError(t, err)
	byRel := map[string]FileFacts{}
	for _, f := range res.Images {
		byRel[f.RelPath] = f
	}

	f, err := StatImage(roots, filepath.Join(root, "sub", "b.diskdump"))
	require.NoError(t, err)
	assert.Equal(t, byRel["sub/b.diskdump"], f)

	t.Chdir(root)
	f, err = StatImage(roots, "a.diskdump")
	require.NoError(t, err)
	assert.Equal(t, byRel["a.diskdump"], f)

	f, err = StatImage(roots, filepath.Join(nested, "n.diskdump"))
	require.NoError(t, err)
	assert.Equal(t, nested, f.Root, "the deepest root wins")
	assert.Equal(t, "n.diskdump", f.RelPath)

	f, err = StatImage(roots, filepath.Join(dir, "alias", "a.diskdump"))
	require.NoError(t, err, "a path through a symlink to the root")
	assert.Equal(t, root, f.Root)
	assert.Equal(t, "a.diskdump", f.RelPath)

	for p, msg := range map[string]string{
		filepath.Join(dir, "outside.diskdump"):             "is not under any watch root",
		filepath.Join(root, ".tmpdir", "h.diskdump"):       "is ignored",
		filepath.Join(root, "notes.txt"):                   "matches none of the watch root's patterns",
		filepath.Join(root, "linkdir", "b.diskdump"):       "symlinked directory",
		filepath.Join(root, "gone.diskdump"):               "no such file",
		filepath.Join(root, "sub"):                         "matches none",
		filepath.Join(root, "sub", "b.diskdump.meta"):      "matches none",
		filepath.Join(root, "sub", "_template.meta"):       "matches none",
		filepath.Join(root, "sub", "b.diskdump") + ".part": "is ignored",
	} {
		_, err := StatImage(roots, p)
		require.Error(t, err, p)
		assert.Contains(t, err.Error(), msg, p)
	}
}

// TestScanAndWatcherAgree runs the daemon's watcher and the one-shot scan
// over the same odd tree: they must find the same images with the same facts,
// since upload task ids are built from them.
func TestScanAndWatcherAgree(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "images")
	other := filepath.Join(dir, "other")
	for _, p := range []string{
		"a.diskdump", "sub/b.diskdump", "sub/deeper/c d #%?.diskdump", "new\nline.diskdump",
		"a.diskdump.meta", "_template.meta", ".hidden.diskdump", "x.diskdump.part", ".dir/y.diskdump",
	} {
		writeFile(t, filepath.Join(root, p), "data:"+p)
	}
	writeFile(t, filepath.Join(other, "o.diskdump"), "o")
	require.NoError(t, os.Symlink("a.diskdump", filepath.Join(root, "link.diskdump")))
	require.NoError(t, os.Symlink("sub", filepath.Join(root, "linkdir")))
	require.NoError(t, os.Symlink("nowhere", filepath.Join(root, "broken.diskdump")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "fifo.diskdump"), 0o644))
	roots := []config.Watch{{Dir: root, Container: "c"}, {Dir: other, Container: "c", Patterns: []string{"*.diskdump", "*.img"}}}

	w, err := watch.New(watch.Options{Roots: WatchRoots(roots), Settle: -1, Rescan: -1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	go func() {
		for range w.Events() {
		}
	}()
	t.Cleanup(func() { cancel(); <-done })

	res, err := Scan(ctx, roots)
	require.NoError(t, err)
	var fromScan []FileFacts
	fromScan = append(fromScan, res.Images...)
	require.Len(t, fromScan, 6)

	var fromWatcher []FileFacts
	require.Eventually(t, func() bool {
		snap, err := w.Snapshot(ctx)
		require.NoError(t, err)
		fromWatcher = fromWatcher[:0]
		for _, e := range snap {
			fromWatcher = append(fromWatcher, FileFacts{Root: e.Root, RelPath: e.RelPath, AbsPath: e.AbsPath, Size: e.Size, ModTime: e.ModTime, Dev: e.Dev, Inode: e.Inode})
		}
		return len(fromWatcher) == len(fromScan)
	}, 20*time.Second, 20*time.Millisecond)
	assert.ElementsMatch(t, fromScan, fromWatcher)
	for _, f := range fromScan {
		req, err := NewCatalog(roots, "n").UploadRequest(f, false)
		require.NoError(t, err)
		assert.NotEmpty(t, req.ID)
	}
}
