package watch

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	for name, o := range map[string]Options{
		"no roots":      {},
		"empty dir":     {Roots: []Root{{Dir: ""}}},
		"bad pattern":   {Roots: []Root{{Dir: dir, Patterns: []string{"[x"}}}},
		"slash":         {Roots: []Root{{Dir: dir, Patterns: []string{"a/*.diskdump"}}}},
		"watched twice": {Roots: []Root{{Dir: dir}, {Dir: dir + "/."}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(o)
			require.Error(t, err)
		})
	}
	w, err := New(Options{Roots: []Root{{Dir: dir}}})
	require.NoError(t, err)
	assert.Equal(t, DefaultSettle, w.settle)
	assert.Equal(t, DefaultRescan, w.rescan)
	assert.Equal(t, DefaultPoll, w.poll)
	assert.Equal(t, []string{"*.diskdump"}, w.roots[0].patterns)
}

func TestNewFileReportedOnceAfterSettle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := opts(t, dir)
	o.Settle = 200 * time.Millisecond
	o.Rescan = 100 * time.Millisecond // frequent rescans must not re-report
	h := start(t, o)
	h.waitScans(1)

	p := filepath.Join(dir, "new.diskdump")
	created := time.Now()
	write(t, p, "hello")
	evs := h.waitFor("new.diskdump ready", hasReady("new.diskdump"))
	first := readyFor(evs, "new.diskdump")[0]
	var at time.Time
	for _, e := range evs {
		if r, ok := e.ev.(ImageReady); ok && r.RelPath == "new.diskdump" {
			at = e.at
		}
	}
	assert.GreaterOrEqual(t, at.Sub(created), o.Settle, "reported before it settled")

	info, err := os.Stat(p)
	require.NoError(t, err)
	dev, ino := fileIdentity(info)
	assert.Equal(t, ImageReady{
		Root: dir, RelPath: "new.diskdump", AbsPath: p, Size: 5,
		ModTime: time.Unix(0, info.ModTime().UnixNano()), Dev: dev, Inode: ino,
	}, first)

	// Several more rescans and settle periods: still reported once.
	n := len(only[RescanDone](evs))
	evs = h.waitScans(n + 4)
	assert.Len(t, readyFor(evs, "new.diskdump"), 1)
}

func TestSlowWriterReportedOnceAfterLastWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := opts(t, dir)
	o.Settle = 300 * time.Millisecond
	h := start(t, o)
	h.waitScans(1)

	f, err := os.Create(filepath.Join(dir, "slow.diskdump"))
	require.NoError(t, err)
	var last time.Time
	for i := range 5 {
		_, err := f.Write([]byte("0123456789"))
		require.NoError(t, err)
		last = time.Now()
		if i < 4 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	require.NoError(t, f.Close())
	evs := h.waitFor("slow.diskdump ready", hasReady("slow.diskdump"))
	for _, e := range evs {
		if r, ok := e.ev.(ImageReady); ok {
			assert.Equal(t, int64(50), r.Size, "reported while still being written")
			assert.GreaterOrEqual(t, e.at.Sub(last), o.Settle)
		}
	}
	time.Sleep(3 * o.Settle)
	assert.Len(t, readyFor(h.all(), "slow.diskdump"), 1)

	// A change after the report is reported again, once settled.
	write(t, filepath.Join(dir, "slow.diskdump"), "changed")
	evs = h.waitFor("second report", func(evs []stamped) bool { return len(readyFor(evs, "slow.diskdump")) == 2 })
	assert.Equal(t, int64(7), readyFor(evs, "slow.diskdump")[1].Size)
}

func TestNewSubdirectoryAndFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := start(t, opts(t, dir))
	h.waitScans(1)

	// mkdir -p then a file at once: the file may predate the new watches.
	write(t, filepath.Join(dir, "a", "b", "c", "deep.diskdump"), "x")
	h.waitFor("deep ready", hasReady("a/b/c/deep.diskdump"))
	// And the new directories are watched: a later file raises events
	// (periodic rescans are off in these tests).
	write(t, filepath.Join(dir, "a", "b", "later.diskdump"), "y")
	h.waitFor("later ready", hasReady("a/b/later.diskdump"))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "a", "b", "c", "d"), 0o755))
	write(t, filepath.Join(dir, "a", "b", "c", "d", "e.diskdump"), "z")
	evs := h.waitFor("e ready", hasReady("a/b/c/d/e.diskdump"))
	assert.ElementsMatch(t, []string{"a/b/c/deep.diskdump", "a/b/later.diskdump", "a/b/c/d/e.diskdump"}, readyPaths(evs))
}

func TestMovedInFromOutside(t *testing.T) {
	t.Parallel()
	dir, outside := t.TempDir(), t.TempDir()
	h := start(t, opts(t, dir))
	h.waitScans(1)

	// A file moved in raises only Create: no Write ever comes.
	write(t, filepath.Join(outside, "moved.diskdump"), "abc")
	require.NoError(t, os.Rename(filepath.Join(outside, "moved.diskdump"), filepath.Join(dir, "moved.diskdump")))
	// A producer's convention: write *.part, then rename into place.
	write(t, filepath.Join(dir, "atomic.diskdump.part"), "abcd")
	require.NoError(t, os.Rename(filepath.Join(dir, "atomic.diskdump.part"), filepath.Join(dir, "atomic.diskdump")))
	// A whole directory moved in.
	write(t, filepath.Join(outside, "batch", "one.diskdump"), "1")
	write(t, filepath.Join(outside, "batch", "sub", "two.diskdump"), "22")
	require.NoError(t, os.Rename(filepath.Join(outside, "batch"), filepath.Join(dir, "batch")))

	evs := h.waitFor("all moved in", func(evs []stamped) bool { return len(only[ImageReady](evs)) >= 4 })
	assert.ElementsMatch(t, []string{"moved.diskdump", "atomic.diskdump", "batch/one.diskdump", "batch/sub/two.diskdump"}, readyPaths(evs))
	assert.Equal(t, int64(4), readyFor(evs, "atomic.diskdump")[0].Size)

	// The moved-in directory is watched.
	write(t, filepath.Join(dir, "batch", "sub", "three.diskdump"), "333")
	h.waitFor("three ready", hasReady("batch/sub/three.diskdump"))
}

func TestDirectoryMovedWithinTree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a", "x", "y", "img.diskdump"), "1")
	h := start(t, opts(t, dir))
	h.waitFor("initial", hasReady("a/x/y/img.diskdump"))

	require.NoError(t, os.MkdirAll(filepath.Join(dir, "b"), 0o755))
	require.NoError(t, os.Rename(filepath.Join(dir, "a", "x"), filepath.Join(dir, "b", "x")))
	evs := h.waitFor("moved", func(evs []stamped) bool {
		return hasReady("b/x/y/img.diskdump")(evs) && len(only[ImageRemoved](evs)) == 1
	})
	assert.Equal(t, ImageRemoved{Root: dir, RelPath: "a/x/y/img.diskdump"}, only[ImageRemoved](evs)[0])

	// Watches below the moved directory report the new paths.
	write(t, filepath.Join(dir, "b", "x", "y", "new.diskdump"), "2")
	evs = h.waitFor("new in moved dir", hasReady("b/x/y/new.diskdump"))
	assert.Equal(t, filepath.Join(dir, "b", "x", "y", "new.diskdump"), readyFor(evs, "b/x/y/new.diskdump")[0].AbsPath)
	assert.Empty(t, readyFor(evs, "a/x/y/new.diskdump"))

	// Back and forth a few times, each time right after creating the
	// destination's parent, so the parent's scan may meet the moved
	// directory before the rename event is handled.
	cur := "b/x"
	for i, next := range []string{"c/x", "c/d/x", "x"} {
		if parentDir(next) != "" {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.FromSlash(parentDir(next))), 0o755))
		}
		require.NoError(t, os.Rename(filepath.Join(dir, filepath.FromSlash(cur)), filepath.Join(dir, filepath.FromSlash(next))))
		rel := next + "/y/n" + strconv.Itoa(i) + ".diskdump"
		write(t, filepath.Join(dir, filepath.FromSlash(rel)), "n")
		h.waitFor(rel, hasReady(rel))
		cur = next
	}
	evs = h.rescan(false)
	var ready []string
	for _, r := range only[ImageReady](evs) {
		if strings.HasPrefix(r.RelPath, "x/") {
			ready = append(ready, r.RelPath)
		}
	}
	assert.ElementsMatch(t, []string{"x/y/img.diskdump", "x/y/new.diskdump", "x/y/n0.diskdump", "x/y/n1.diskdump", "x/y/n2.diskdump"}, ready)
}

func TestIgnoreRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := opts(t, dir)
	o.Roots[0].Patterns = []string{"*.diskdump", "*.img"}
	ignored := []string{
		".hidden.diskdump", "x.diskdump.part", "x.diskdump.tmp", "x.diskdump~",
		"notes.txt", "x.raw", ".cache/in-hidden.diskdump", "work.tmp/in-tmp-dir.diskdump",
		"orphan.meta", "x.img.json",
	}
	for _, p := range ignored {
		write(t, filepath.Join(dir, p), "i")
	}
	write(t, filepath.Join(dir, "ok.diskdump"), "ok")
	h := start(t, o)
	h.waitFor("ok ready", hasReady("ok.diskdump"))

	// Also while running.
	for _, p := range ignored {
		write(t, filepath.Join(dir, "live", p), "i")
	}
	write(t, filepath.Join(dir, "live", "ok.img"), "ok")
	h.waitFor("live ok ready", hasReady("live/ok.img"))
	h.rescan(true)
	time.Sleep(2 * o.Settle)
	evs := h.all()
	assert.ElementsMatch(t, []string{"ok.diskdump", "live/ok.img", "ok.diskdump", "live/ok.img"}, readyPaths(evs))
	assert.Empty(t, only[MetaChanged](evs))
	assert.Empty(t, only[Error](evs))
}

func TestClassify(t *testing.T) {
	pats := []string{"*.diskdump"}
	for name, want := range map[string]Kind{
		"a.diskdump":          KindImage,
		"a b#%?ü.diskdump":    KindImage,
		"a.diskdump.meta":     KindMeta,
		"_template.meta":      KindTemplate,
		"a.meta":              KindNone,
		".a.diskdump":         KindNone,
		".a.diskdump.meta":    KindNone,
		"a.diskdump.part":     KindNone,
		"a.diskdump.tmp":      KindNone,
		"a.diskdump~":         KindNone,
		"a.diskdump.meta.tmp": KindNone,
		"a.diskdump.json":     KindNone,
		"A.DISKDUMP":          KindNone, // globs are case-sensitive, as on the filesystem
	} {
		assert.Equal(t, want, Classify(name, pats), name)
	}
	// A catch-all pattern still tells metafiles apart.
	assert.Equal(t, KindMeta, Classify("x.meta", []string{"*"}))
	assert.Equal(t, KindTemplate, Classify("_template.meta", []string{"*"}))
}

func TestMetafiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "_template.meta"), `{}`)
	write(t, filepath.Join(dir, "a", "x.diskdump"), "img")
	write(t, filepath.Join(dir, "a", "x.diskdump.meta"), `{"name":"x"}`)
	write(t, filepath.Join(dir, "a", "_template.meta"), `{}`)
	h := start(t, opts(t, dir))

	// Found by the first scan: reported once settled, like images.
	evs := h.waitFor("initial metafiles", func(evs []stamped) bool { return len(only[MetaChanged](evs)) == 3 })
	assert.ElementsMatch(t, []MetaChanged{
		{Root: dir, RelPath: "_template.meta", Template: true, Affects: ""},
		{Root: dir, RelPath: "a/_template.meta", Template: true, Affects: "a"},
		{Root: dir, RelPath: "a/x.diskdump.meta", Affects: "a/x.diskdump"},
	}, withoutSince(t, only[MetaChanged](evs)))

	// An editor's atomic save: temp file, then rename over the template.
	beforeSave := time.Now()
	write(t, filepath.Join(dir, "a", "_template.meta.tmp"), `{"properties":{"OS":"linux"}}`)
	require.NoError(t, os.Rename(filepath.Join(dir, "a", "_template.meta.tmp"), filepath.Join(dir, "a", "_template.meta")))
	evs = h.waitFor("template change", func(evs []stamped) bool { return len(only[MetaChanged](evs)) == 4 })
	tm := only[MetaChanged](evs)[3]
	// Since: the save came before it, and it is one settle before the report.
	assert.True(t, tm.Since.After(beforeSave), "since %v, save at %v", tm.Since, beforeSave)
	assert.True(t, tm.Since.Before(evs[len(evs)-1].at), "since %v, reported at %v", tm.Since, evs[len(evs)-1].at)
	assert.Equal(t, MetaChanged{Root: dir, RelPath: "a/_template.meta", Template: true, Affects: "a"}, withoutSince(t, []MetaChanged{tm})[0])
	assert.True(t, tm.AffectsImage("a/x.diskdump"))
	assert.True(t, tm.AffectsImage("a/deeper/y.diskdump"))
	assert.False(t, tm.AffectsImage("ab/y.diskdump"))
	assert.False(t, tm.AffectsImage("y.diskdump"))

	// A new per-image metafile, then its removal.
	write(t, filepath.Join(dir, "b.diskdump.meta"), `{}`)
	evs = h.waitFor("new metafile", func(evs []stamped) bool { return len(only[MetaChanged](evs)) == 5 })
	mm := only[MetaChanged](evs)[4]
	assert.Equal(t, MetaChanged{Root: dir, RelPath: "b.diskdump.meta", Affects: "b.diskdump"}, withoutSince(t, []MetaChanged{mm})[0])
	assert.True(t, mm.AffectsImage("b.diskdump"))
	assert.False(t, mm.AffectsImage("a/x.diskdump"))

	require.NoError(t, os.Remove(filepath.Join(dir, "a", "x.diskdump.meta")))
	evs = h.waitFor("metafile removed", func(evs []stamped) bool { return len(only[MetaChanged](evs)) == 6 })
	assert.Equal(t, MetaChanged{Root: dir, RelPath: "a/x.diskdump.meta", Affects: "a/x.diskdump", Removed: true}, withoutSince(t, only[MetaChanged](evs)[5:])[0])
	// Metafile changes never re-report the image.
	assert.Len(t, readyFor(evs, "a/x.diskdump"), 1)
}

// withoutSince checks that each event says since when the metafile was as
// reported, and drops that time for comparisons.
func withoutSince(t *testing.T, evs []MetaChanged) []MetaChanged {
	t.Helper()
	out := make([]MetaChanged, len(evs))
	for i, e := range evs {
		assert.False(t, e.Since.IsZero(), "%s: no Since", e.RelPath)
		e.Since = time.Time{}
		out[i] = e
	}
	return out
}

func TestRemoval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "gone.diskdump"), "1")
	write(t, filepath.Join(dir, "tree", "t1.diskdump"), "1")
	write(t, filepath.Join(dir, "tree", "sub", "t2.diskdump"), "1")
	write(t, filepath.Join(dir, "old.diskdump"), "1")
	o := opts(t, dir)
	h := start(t, o)
	h.waitFor("initial", func(evs []stamped) bool { return len(only[ImageReady](evs)) == 4 })

	require.NoError(t, os.Remove(filepath.Join(dir, "gone.diskdump")))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "tree")))
	require.NoError(t, os.Rename(filepath.Join(dir, "old.diskdump"), filepath.Join(dir, "new.diskdump")))
	// Created and deleted before settling: never reported, so never removed.
	write(t, filepath.Join(dir, "brief.diskdump"), "1")
	require.NoError(t, os.Remove(filepath.Join(dir, "brief.diskdump")))

	evs := h.waitFor("removals", func(evs []stamped) bool {
		return len(only[ImageRemoved](evs)) == 4 && hasReady("new.diskdump")(evs)
	})
	var removed []string
	for _, r := range only[ImageRemoved](evs) {
		assert.Equal(t, dir, r.Root)
		removed = append(removed, r.RelPath)
	}
	assert.ElementsMatch(t, []string{"gone.diskdump", "tree/t1.diskdump", "tree/sub/t2.diskdump", "old.diskdump"}, removed)
	time.Sleep(2 * o.Settle)
	evs = h.rescan(false)
	assert.Empty(t, readyFor(evs, "brief.diskdump"))
	assert.Len(t, only[ImageRemoved](evs), 4)
	assert.Equal(t, 1, only[RescanDone](evs)[1].Images)
}

func TestOverflowTriggersRescan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := opts(t, dir)
	h := start(t, o)
	h.waitScans(1)

	// Lose every event, as the kernel does when its queue overflows.
	h.w.hooks.dropEvents.Store(true)
	write(t, filepath.Join(dir, "lost", "missed.diskdump"), "m")
	time.Sleep(3 * o.Settle)
	assert.Empty(t, only[ImageReady](h.all()), "nothing can be found without events or rescans")

	h.w.raw.push(rawEvent{root: h.w.roots[0], err: fsnotify.ErrEventOverflow})
	evs := h.waitFor("found by the overflow rescan", hasReady("lost/missed.diskdump"))
	rd := only[RescanDone](evs)
	require.Len(t, rd, 2)
	assert.False(t, rd[1].Initial)
	assert.Equal(t, 1, rd[1].Images)

	// The rescan also watched the directory it found.
	h.w.hooks.dropEvents.Store(false)
	write(t, filepath.Join(dir, "lost", "seen.diskdump"), "s")
	h.waitFor("seen via events", hasReady("lost/seen.diskdump"))
}

func TestWatchLimitFallsBackToPolling(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "full"), 0o755))
	o := opts(t, dir)
	h := start(t, o, func(w *Watcher) {
		w.hooks.addWatch = func(fsw *fsnotify.Watcher, path string) error {
			if filepath.Base(path) == "full" {
				return os.NewSyscallError("inotify_add_watch", syscall.ENOSPC)
			}
			return fsw.Add(path)
		}
	})
	evs := h.waitScans(1)
	errs := only[Error](evs)
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], ErrWatchLimit)
	assert.True(t, errs[0].Notice, "news about the root, not a problem with a file")
	assert.ErrorIs(t, errs[0], syscall.ENOSPC)
	assert.Contains(t, errs[0].Error(), "max_user_watches")

	// Polling still finds new files everywhere, including new directories.
	write(t, filepath.Join(dir, "full", "polled.diskdump"), "p")
	write(t, filepath.Join(dir, "new", "polled2.diskdump"), "p")
	h.waitFor("polled", func(evs []stamped) bool {
		return hasReady("full/polled.diskdump")(evs) && hasReady("new/polled2.diskdump")(evs)
	})
	require.NoError(t, os.Remove(filepath.Join(dir, "full", "polled.diskdump")))
	evs = h.waitFor("removal polled", func(evs []stamped) bool { return len(only[ImageRemoved](evs)) == 1 })
	assert.Len(t, only[Error](evs), 1, "the fallback is reported once")
}

func TestPollRoot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := opts(t, dir)
	o.Roots[0].Poll = true
	h := start(t, o)
	h.waitScans(1)
	require.Nil(t, h.w.roots[0].fsw)
	write(t, filepath.Join(dir, "p", "q.diskdump"), "q")
	h.waitFor("polled", hasReady("p/q.diskdump"))
}

func TestMissingRootAppearsAndGoes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "later")
	o := opts(t, dir)
	h := start(t, o)
	evs := h.waitFor("missing root reported", func(evs []stamped) bool { return len(only[Error](evs)) > 0 })
	e := only[Error](evs)[0]
	assert.Equal(t, "", e.RelPath)
	assert.ErrorIs(t, e, os.ErrNotExist)
	assert.Contains(t, e.Error(), dir)

	write(t, filepath.Join(dir, "sub", "img.diskdump"), "1")
	h.waitFor("root appeared", hasReady("sub/img.diskdump"))
	// Watched now: a new file is found by events (the poll ticker only
	// scans roots without fsnotify).
	write(t, filepath.Join(dir, "img2.diskdump"), "2")
	h.waitFor("via events", hasReady("img2.diskdump"))

	require.NoError(t, os.RemoveAll(dir))
	// Missing again is reported again.
	evs = h.waitFor("root removed", func(evs []stamped) bool {
		return len(only[ImageRemoved](evs)) == 2 && len(only[Error](evs)) == 2
	})
	assert.ErrorIs(t, only[Error](evs)[1], os.ErrNotExist)
}

func TestSymlinks(t *testing.T) {
	t.Parallel()
	dir, outside := t.TempDir(), t.TempDir()
	write(t, filepath.Join(dir, "real", "r.diskdump"), "real")
	write(t, filepath.Join(outside, "target.bin"), "external")
	links := map[string]string{
		"loop":                ".",  // a directory loop
		"real/up":             "..", // another
		"linkdir":             "real",
		"self.diskdump":       "self.diskdump", // ELOOP
		"dangling.diskdump":   "nowhere",
		"ext.diskdump":        filepath.Join(outside, "target.bin"),
		"samedir.diskdump":    "real/r.diskdump",
		"ignored-dangling.xx": "nowhere",
	}
	for name, target := range links {
		require.NoError(t, os.Symlink(target, filepath.Join(dir, name)))
	}
	h := start(t, opts(t, dir))
	evs := h.waitFor("links settled", func(evs []stamped) bool { return len(only[ImageReady](evs)) == 2 && len(only[Error](evs)) == 3 })
	assert.ElementsMatch(t, []string{"real/r.diskdump", "samedir.diskdump"}, readyPaths(evs))
	same := readyFor(evs, "samedir.diskdump")[0]
	assert.Equal(t, int64(len("real")), same.Size)
	assert.Equal(t, filepath.Join(dir, "samedir.diskdump"), same.AbsPath)

	errs := map[string]error{}
	for _, e := range only[Error](evs) {
		errs[e.RelPath] = e.Err
	}
	require.Len(t, errs, 3, "%v", errs)
	assert.ErrorIs(t, errs["self.diskdump"], syscall.ELOOP)
	assert.ErrorIs(t, errs["dangling.diskdump"], os.ErrNotExist)
	assert.Contains(t, errs["self.diskdump"].Error(), "broken symlink")
	// The link to a file outside the roots is refused, naming both ends.
	var le *LinkError
	require.ErrorAs(t, errs["ext.diskdump"], &le)
	assert.Equal(t, filepath.Join(dir, "ext.diskdump"), le.Link)
	assert.Equal(t, filepath.Join(outside, "target.bin"), le.Target)
	assert.Contains(t, le.Error(), "outside every watch root")

	// A link created while running, into a loop: nothing hangs.
	require.NoError(t, os.Symlink("..", filepath.Join(dir, "real", "up2")))
	write(t, filepath.Join(dir, "real", "after.diskdump"), "a")
	h.waitFor("after", hasReady("real/after.diskdump"))
	evs = h.rescan(false)
	assert.Len(t, only[ImageReady](evs), 3)
	assert.Len(t, only[Error](evs), 3, "errors are not repeated by rescans")

	// A reported link re-pointed outside the roots is an image no more.
	tmp := filepath.Join(dir, ".swap")
	require.NoError(t, os.Symlink(filepath.Join(outside, "target.bin"), tmp))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "samedir.diskdump")))
	evs = h.waitFor("samedir removed", func(evs []stamped) bool {
		for _, r := range only[ImageRemoved](evs) {
			if r.RelPath == "samedir.diskdump" {
				return true
			}
		}
		return false
	})
	assert.Len(t, readyFor(evs, "samedir.diskdump"), 1, "not reported again")
}

// TestSymlinkPolicies: follow_symlinks inside (the default) takes links
// into any watch root and none out of them; never takes none; any takes all.
func TestSymlinkPolicies(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	a, b, outside := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "outside")
	write(t, filepath.Join(a, "own.diskdump"), "own")
	write(t, filepath.Join(b, "sub", "other.bin"), "in b")
	write(t, filepath.Join(outside, "secret"), "secret")
	// A root reached through a symlink still counts as inside.
	require.NoError(t, os.Symlink(b, filepath.Join(base, "b-alias")))
	for name, target := range map[string]string{
		"same.diskdump":            "own.diskdump",
		"other-root.diskdump":      filepath.Join(base, "b-alias", "sub", "other.bin"),
		"out.diskdump":             filepath.Join(outside, "secret"),
		"dotdot.diskdump":          "../outside/secret",
		"out.diskdump.meta":        filepath.Join(outside, "secret"),
		"own.diskdump.meta":        filepath.Join(base, "b", "sub", "other.bin"),
		"via-other-root.diskdump":  filepath.Join(base, "b", "link-out"),
		"_template.meta":           "../outside/secret",
		"unrelated-outside-target": filepath.Join(outside, "secret"),
	} {
		require.NoError(t, os.Symlink(target, filepath.Join(a, name)))
	}
	// A link in another root pointing out: a chain does not launder it.
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(b, "link-out")))

	for _, tc := range []struct {
		policy LinkPolicy
		ready  []string
		metas  []string
		bad    []string
	}{
		{"", []string{"own.diskdump", "same.diskdump", "other-root.diskdump"}, []string{"own.diskdump.meta"},
			[]string{"out.diskdump", "dotdot.diskdump", "out.diskdump.meta", "via-other-root.diskdump", "_template.meta"}},
		{LinksNever, []string{"own.diskdump"}, nil,
			[]string{"same.diskdump", "other-root.diskdump", "out.diskdump", "dotdot.diskdump", "out.diskdump.meta", "own.diskdump.meta", "via-other-root.diskdump", "_template.meta"}},
		{LinksAny, []string{"own.diskdump", "same.diskdump", "other-root.diskdump", "out.diskdump", "dotdot.diskdump", "via-other-root.diskdump"},
			[]string{"own.diskdump.meta", "out.diskdump.meta", "_template.meta"}, nil},
	} {
		t.Run(string(tc.policy)+"-", func(t *testing.T) {
			o := opts(t, a)
			o.Roots = []Root{{Dir: a, Links: tc.policy}, {Dir: filepath.Join(base, "b-alias"), Patterns: []string{"*.none"}}}
			h := start(t, o)
			evs := h.waitFor("settled", func(evs []stamped) bool {
				return len(only[ImageReady](evs)) == len(tc.ready) && len(only[MetaChanged](evs)) == len(tc.metas) && len(only[Error](evs)) == len(tc.bad)
			})
			assert.ElementsMatch(t, tc.ready, readyPaths(evs))
			var metas, bad []string
			for _, m := range only[MetaChanged](evs) {
				metas = append(metas, m.RelPath)
			}
			for _, e := range only[Error](evs) {
				bad = append(bad, e.RelPath)
				assert.ErrorIs(t, e, ErrLinkRefused)
				assert.Contains(t, e.Error(), e.Path+" -> ")
			}
			assert.ElementsMatch(t, tc.metas, metas)
			assert.ElementsMatch(t, tc.bad, bad)
		})
	}
}

func TestOddNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	images := []string{
		"with space.diskdump", `quote"s and 'single'.diskdump`, "hash#1.diskdump", "pct%20.diskdump",
		"what?.diskdump", "ünïcødé ελληνικά 日本.diskdump", "new\nline.diskdump", "back\\slash.diskdump",
		"sub dir #%?/ü nested.diskdump",
	}
	meta := "sub dir #%?/ü nested.diskdump.meta"
	// Some found by the initial walk, the rest through events.
	write(t, filepath.Join(dir, images[0]), "x")
	write(t, filepath.Join(dir, "zero.diskdump"), "")
	h := start(t, opts(t, dir))
	evs := h.waitFor("first", func(evs []stamped) bool { return hasReady(images[0])(evs) && hasReady("zero.diskdump")(evs) })
	assert.Equal(t, int64(0), readyFor(evs, "zero.diskdump")[0].Size)
	for _, n := range append(images[1:], meta) {
		write(t, filepath.Join(dir, filepath.FromSlash(n)), "x")
	}
	evs = h.waitFor("all odd names", func(evs []stamped) bool {
		return len(only[ImageReady](evs)) == len(images)+1 && len(only[MetaChanged](evs)) == 1
	})
	assert.ElementsMatch(t, append(images, "zero.diskdump"), readyPaths(evs))
	for _, r := range only[ImageReady](evs) {
		assert.Equal(t, filepath.Join(dir, filepath.FromSlash(r.RelPath)), r.AbsPath)
		_, err := os.Stat(r.AbsPath)
		assert.NoError(t, err)
	}
	assert.Equal(t, MetaChanged{Root: dir, RelPath: meta, Affects: "sub dir #%?/ü nested.diskdump"}, withoutSince(t, only[MetaChanged](evs))[0])
	assert.Empty(t, only[Error](evs))
}

func TestForceRescanAndSnapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.diskdump"), "bb")
	write(t, filepath.Join(dir, "a", "a.diskdump"), "a")
	write(t, filepath.Join(dir, "a", "a.diskdump.meta"), "{}")
	h := start(t, opts(t, dir))
	h.waitFor("initial", func(evs []stamped) bool {
		return len(only[ImageReady](evs)) == 2 && len(only[MetaChanged](evs)) == 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	snap, err := h.w.Snapshot(ctx)
	require.NoError(t, err)
	require.Len(t, snap, 2)
	assert.Equal(t, "a/a.diskdump", snap[0].RelPath)
	assert.Equal(t, "b.diskdump", snap[1].RelPath)
	assert.Equal(t, int64(2), snap[1].Size)

	evs := h.rescan(false)
	assert.Len(t, only[ImageReady](evs), 2, "a plain rescan re-reports nothing")
	assert.Len(t, only[MetaChanged](evs), 1)

	require.NoError(t, h.w.ForceRescan(ctx, true))
	evs = h.waitFor("re-emitted", func(evs []stamped) bool {
		return len(only[ImageReady](evs)) == 4 && len(only[MetaChanged](evs)) == 2
	})
	assert.Equal(t, readyFor(evs, "b.diskdump")[0], readyFor(evs, "b.diskdump")[1])

	h.stop()
	assert.Error(t, h.w.ForceRescan(ctx, false))
	_, err = h.w.Snapshot(ctx)
	assert.Error(t, err)
	assert.Error(t, h.w.Run(ctx), "Run twice")
}

func TestAffected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.diskdump"), "bb")
	write(t, filepath.Join(dir, "a", "a.diskdump"), "a")
	write(t, filepath.Join(dir, "a", "x", "c.diskdump"), "c")
	write(t, filepath.Join(dir, "a", "a.diskdump.meta"), "{}")
	h := start(t, opts(t, dir))
	h.waitFor("initial", func(evs []stamped) bool { return len(only[ImageReady](evs)) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	rels := func(m MetaChanged) []string {
		imgs, err := h.w.Affected(ctx, m)
		require.NoError(t, err)
		var out []string
		for _, img := range imgs {
			assert.Equal(t, dir, img.Root)
			out = append(out, img.RelPath)
		}
		return out
	}
	assert.Equal(t, []string{"a/a.diskdump"}, rels(MetaChanged{Root: dir, RelPath: "a/a.diskdump.meta", Affects: "a/a.diskdump"}))
	assert.Empty(t, rels(MetaChanged{Root: dir, RelPath: "a/gone.diskdump.meta", Affects: "a/gone.diskdump"}), "no such image")
	assert.Empty(t, rels(MetaChanged{Root: dir + "-other", RelPath: "b.diskdump.meta", Affects: "b.diskdump"}), "another root")
	assert.Equal(t, []string{"a/a.diskdump", "a/x/c.diskdump"}, rels(MetaChanged{Root: dir, RelPath: "a/_template.meta", Template: true, Affects: "a"}))
	assert.Equal(t, []string{"a/a.diskdump", "a/x/c.diskdump", "b.diskdump"}, rels(MetaChanged{Root: dir, RelPath: "_template.meta", Template: true}))
}

func TestCancelStopsPromptlyWithoutLeaks(t *testing.T) {
	// Not parallel: it counts goroutines.
	dir := fastTempDir(t)
	for i := range 2000 {
		write(t, filepath.Join(dir, "d"+string(rune('a'+i%20)), "f"+strconv.Itoa(i)+".diskdump"), "x")
	}
	before := runtime.NumGoroutine()

	// Cancel during the initial scan.
	w, err := New(opts(t, dir))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	time.Sleep(5 * time.Millisecond)
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	assert.Less(t, time.Since(t0), 2*time.Second)
	for range w.Events() { // closed, maybe after a few queued events
	}

	// Cancel while idle, with events still undelivered (nobody reads).
	w, err = New(opts(t, dir))
	require.NoError(t, err)
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- w.Run(ctx) }()
	require.NoError(t, w.ForceRescan(ctx, false))
	time.Sleep(300 * time.Millisecond)
	t0 = time.Now()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	assert.Less(t, time.Since(t0), time.Second)
	_, open := <-w.Events()
	assert.False(t, open)

	// Not require.Eventually: it polls from a goroutine of its own.
	end := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(end) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines leaked: %d before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// Directories replaced or moved while events are lost (overflow) are
// re-watched correctly by the rescan: new files in them raise events under
// their new names.
func TestDirectoriesChangedWhileEventsLost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a", "old.diskdump"), "1")
	write(t, filepath.Join(dir, "m", "x", "y", "moved.diskdump"), "2")
	h := start(t, opts(t, dir))
	h.waitFor("initial", func(evs []stamped) bool { return len(only[ImageReady](evs)) == 2 })

	h.w.hooks.dropEvents.Store(true)
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "a")))
	write(t, filepath.Join(dir, "a", "new.diskdump"), "3")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "n"), 0o755))
	require.NoError(t, os.Rename(filepath.Join(dir, "m", "x"), filepath.Join(dir, "n", "x")))
	h.w.hooks.dropEvents.Store(false)
	h.w.raw.push(rawEvent{root: h.w.roots[0], err: fsnotify.ErrEventOverflow})

	evs := h.waitFor("rescanned", func(evs []stamped) bool {
		return hasReady("a/new.diskdump")(evs) && hasReady("n/x/y/moved.diskdump")(evs)
	})
	var removed []string
	for _, r := range only[ImageRemoved](evs) {
		removed = append(removed, r.RelPath)
	}
	assert.ElementsMatch(t, []string{"a/old.diskdump", "m/x/y/moved.diskdump"}, removed)

	write(t, filepath.Join(dir, "a", "later.diskdump"), "4")
	write(t, filepath.Join(dir, "n", "x", "y", "later.diskdump"), "5")
	evs = h.waitFor("via events", func(evs []stamped) bool {
		return hasReady("a/later.diskdump")(evs) && hasReady("n/x/y/later.diskdump")(evs)
	})
	assert.Empty(t, readyFor(evs, "m/x/y/later.diskdump"))
}

// TestProblemsAreListedAndCleared: each rescan lists the root's current
// problems; a problem fixed, or a refused file removed (seen by an event or,
// with events lost, by a rescan), is reported cleared and listed no more.
func TestProblemsAreListedAndCleared(t *testing.T) {
	t.Parallel()
	dir, outside := t.TempDir(), t.TempDir()
	write(t, filepath.Join(outside, "secret"), "s")
	write(t, filepath.Join(dir, "ok.diskdump"), "ok")
	for name, target := range map[string]string{
		"out.diskdump":    filepath.Join(outside, "secret"),
		"broken.diskdump": "nowhere",
		"lost.diskdump":   filepath.Join(outside, "secret"),
	} {
		require.NoError(t, os.Symlink(target, filepath.Join(dir, name)))
	}
	h := start(t, opts(t, dir))
	evs := h.waitFor("three problems", func(evs []stamped) bool { return len(only[Error](evs)) == 3 })
	scan := only[RescanDone](evs)[0]
	require.Equal(t, 3, scan.ProblemsTotal)
	var listed []string
	for _, p := range scan.Problems {
		listed = append(listed, p.RelPath)
	}
	assert.Equal(t, []string{"broken.diskdump", "lost.diskdump", "out.diskdump"}, listed)

	cleared := func(rel string) func([]stamped) bool {
		return func(evs []stamped) bool {
			for _, c := range only[ErrorCleared](evs) {
				if c.RelPath == rel {
					return true
				}
			}
			return false
		}
	}
	require.NoError(t, os.Remove(filepath.Join(dir, "out.diskdump")))
	h.waitFor("out cleared", cleared("out.diskdump"))
	write(t, filepath.Join(dir, "nowhere"), "now it is somewhere")
	h.rescan(false) // a link's target is not watched: rescans see it
	h.waitFor("broken fixed", hasReady("broken.diskdump"))
	h.waitFor("broken cleared", cleared("broken.diskdump"))
	h.w.hooks.dropEvents.Store(true)
	require.NoError(t, os.Remove(filepath.Join(dir, "lost.diskdump")))
	time.Sleep(100 * time.Millisecond)
	h.w.hooks.dropEvents.Store(false)
	evs = h.rescan(false)
	assert.True(t, cleared("lost.diskdump")(evs), "a rescan clears what went unseen")
	last := only[RescanDone](evs)
	assert.Equal(t, 0, last[len(last)-1].ProblemsTotal)
	assert.Empty(t, last[len(last)-1].Problems)
}

func TestFollowAnyIsWarnedAtStart(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	_, err := New(Options{Roots: []Root{{Dir: t.TempDir(), Links: LinksAny}, {Dir: t.TempDir()}}, Logger: zap.New(core)})
	require.NoError(t, err)
	require.Equal(t, 1, logs.Len())
	assert.Contains(t, logs.All()[0].Message, "follow_symlinks: any")
	_, err = New(Options{Roots: []Root{{Dir: t.TempDir(), Links: "sometimes"}}})
	assert.ErrorContains(t, err, `follow_symlinks "sometimes": want inside, never or any`)
}
