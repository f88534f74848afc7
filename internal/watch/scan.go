package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// rootState is everything known about one root. Only the core goroutine
// touches it (and, before Run, New).
type rootState struct {
	*Tree        // the root and its rules
	polling bool // no fsnotify for this root (configured, or limits hit)
	present bool // the root directory existed at the last look

	fsw        *fsnotify.Watcher
	stopReader chan struct{}

	gen   uint64 // bumped per scan; entries not stamped with it are gone
	files map[string]*fileState
	dirs  map[string]*dirState
	// watchedIDs maps each watched directory's (dev, inode) to its path.
	// inotify watches inodes, and fsnotify names events after the path a
	// watch was first added with; a directory seen at a new path while its
	// old path still holds the watch (a move not yet processed) must drop the
	// old watch first, or its events would keep the old names.
	watchedIDs map[FileID]string
	errs       map[string]errEntry // rel → the problem reported there, to report once
	warned     map[string]bool     // symlinked directories already logged
}

// errEntry is a problem reported at a path, until it is fixed or gone.
type errEntry struct {
	err error
	gen uint64 // the scan that last saw it
}

type dirState struct {
	gen     uint64
	watched bool
	id      FileID // valid when watched
}

// relOf maps an fsnotify path back to a '/'-separated path under the root.
func (r *rootState) relOf(name string) (string, bool) {
	if name == r.abs {
		return "", true
	}
	prefix := r.abs
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	if !strings.HasPrefix(name, prefix) {
		return "", false
	}
	return filepath.ToSlash(name[len(prefix):]), true
}

func (r *rootState) imageReady(fst *fileState, s sig) ImageReady {
	return ImageReady{
		Root:    r.dir,
		RelPath: fst.rel,
		AbsPath: r.AbsOf(fst.rel),
		Size:    s.size,
		ModTime: time.Unix(0, s.mtime),
		Dev:     s.dev,
		Inode:   s.ino,
	}
}

// fullScan rescans a whole root and reports RescanDone. A root that does not
// exist (any more) loses all its state and is retried every poll period.
func (w *Watcher) fullScan(ctx context.Context, r *rootState, initial bool) {
	if ctx.Err() != nil {
		return
	}
	start := time.Now()
	if err := r.CheckRoot(); err != nil {
		if r.present || initial {
			w.removeDir(r, "")
		}
		r.present = false
		w.reportErr(r, "", fmt.Errorf("watch root unusable (retrying every %s): %w", w.poll, err))
		return
	}
	r.present = true
	w.openNotify(r)
	if !w.scanTree(ctx, r, "") {
		return
	}
	images := 0
	for _, fst := range r.files {
		if fst.kind == KindImage {
			images++
		}
	}
	d := time.Since(start)
	w.log.Debug("scan done", zap.String("root", r.dir), zap.Int("images", images),
		zap.Int("dirs", len(r.dirs)), zap.Duration("took", d), zap.Bool("polling", r.fsw == nil))
	problems, total := r.problems(MaxProblems)
	w.publish(RescanDone{Root: r.dir, Images: images, Duration: d, Initial: initial, Problems: problems, ProblemsTotal: total})
}

// scanTree walks the directory rel (watching every directory in it), brings
// every file's state up to date, and forgets what is no longer there. It
// returns false if ctx ended the walk, in which case nothing is forgotten.
func (w *Watcher) scanTree(ctx context.Context, r *rootState, rel string) bool {
	r.gen++
	gen := r.gen
	var failed []string
	if err := w.walkDir(ctx, r, rel, gen, &failed); err != nil {
		return false
	}
	// What a failed listing hid is kept: unreadable is not removed.
	keep := func(p string) bool {
		for _, f := range failed {
			if underDir(f, p) {
				return true
			}
		}
		return false
	}
	var goneFiles []*fileState
	for p, fst := range r.files {
		if fst.gen != gen && underDir(rel, p) && !keep(p) {
			goneFiles = append(goneFiles, fst)
		}
	}
	sortFiles(goneFiles)
	for _, fst := range goneFiles {
		w.removeFile(r, fst)
	}
	var goneDirs []string
	for p, d := range r.dirs {
		if d.gen != gen && underDir(rel, p) && !keep(p) {
			goneDirs = append(goneDirs, p)
		}
	}
	for _, p := range goneDirs {
		if _, still := r.dirs[p]; still { // may have gone with a parent
			w.removeDir(r, p)
		}
	}
	// Problems at paths this walk no longer found (a refused or broken link
	// removed while events were lost) are gone with them.
	for _, p := range sortedKeys(r.errs) {
		_, file := r.files[p]
		_, dir := r.dirs[p]
		if r.errs[p].gen != gen && underDir(rel, p) && !keep(p) && !file && !dir {
			w.dropErr(r, p)
		}
	}
	return true
}

func (w *Watcher) walkDir(ctx context.Context, r *rootState, rel string, gen uint64, failed *[]string) error {
	var watchErr error
	return r.Walk(ctx, rel, Visitor{
		EnterDir: func(rel string) {
			d := r.dirs[rel]
			if d == nil {
				d = &dirState{}
				r.dirs[rel] = d
			}
			d.gen = gen
			// Watch before listing, so that a file created in between is
			// seen by one or the other.
			watchErr = nil
			if r.fsw != nil {
				watchErr = w.watchDir(r, rel, d)
			}
		},
		Listed: func(rel string, err error) {
			switch {
			case errors.Is(err, fs.ErrNotExist):
				r.dirs[rel].gen = 0 // vanished meanwhile: let the sweep forget it
			case err != nil:
				*failed = append(*failed, rel)
				w.reportErr(r, rel, fmt.Errorf("cannot list directory (its contents are kept as they were and retried at each rescan): %w", err))
			case watchErr != nil:
				w.reportErr(r, rel, fmt.Errorf("cannot watch directory (changes in it are seen by rescans only): %w", watchErr))
			default:
				w.clearErr(r, rel)
			}
		},
		Entry: func(e Entry) { w.take(r, e) },
	})
}

// take applies what the rules made of one path: a usable candidate is
// observed, a refused one reported, a symlinked directory logged once.
func (w *Watcher) take(r *rootState, e Entry) {
	switch {
	case e.LinkedDir:
		if !r.warned[e.RelPath] {
			r.warned[e.RelPath] = true
			w.log.Warn("not following symlinked directory", zap.String("root", r.dir), zap.String("path", e.RelPath))
		}
	case e.Err != nil:
		w.reportErr(r, e.RelPath, e.Err)
	case e.Usable():
		w.observe(r, e.RelPath, e.Kind, sigOf(e.Info))
	}
}

// watchDir makes sure directory rel is watched as the directory that is
// there now. It adds the watch on every scan, not only the first time:
// inotify_add_watch on a watched directory is a no-op, and it heals watches
// lost with the events of a queue overflow, including a directory replaced
// at the same path whose new inode reuses the old number. Errors other than
// the kernel's limits are returned for the caller to report.
func (w *Watcher) watchDir(r *rootState, rel string, d *dirState) error {
	abs := r.AbsOf(rel)
	info, err := os.Lstat(abs)
	if err != nil {
		return err
	}
	id := IDOf(info)
	if d.watched && d.id != id {
		// Replaced, or moved away and something else put here. If moved,
		// removing by path drops the kernel watch that followed it, whose
		// events fsnotify would name after this path.
		w.unwatch(r, rel, d)
	}
	if old, ok := r.watchedIDs[id]; ok && old != rel {
		if still, err := os.Lstat(r.AbsOf(old)); err == nil && os.SameFile(still, info) {
			// One directory at two paths (a bind mount): inotify gives it a
			// single watch, which stays with the first path.
			if !r.warned[rel] {
				r.warned[rel] = true
				w.log.Warn("directory already watched under another path; this path is seen by rescans only",
					zap.String("root", r.dir), zap.String("path", rel), zap.String("watched_as", old))
			}
			return nil
		}
		// Moved here from old, and the watch added there followed it: drop
		// it, or fsnotify would keep naming its events after old. Old's
		// files are forgotten by the sweep or the rename event.
		if od := r.dirs[old]; od != nil {
			w.unwatch(r, old, od)
		} else {
			_ = r.fsw.Remove(r.AbsOf(old))
			delete(r.watchedIDs, id)
		}
	}
	switch err := w.addWatch(r, abs); {
	case err == nil:
		d.watched, d.id = true, id
		r.watchedIDs[id] = rel
	case isWatchLimit(err):
		w.fallBackToPolling(r, err)
	default:
		return err
	}
	return nil
}

// unwatch drops the watch fsnotify holds under rel's path. Removing by path
// also drops the kernel watch of a directory that was moved away (not
// deleted), so a later watch on its new path gets fresh names. Errors mean
// it is gone already.
func (w *Watcher) unwatch(r *rootState, rel string, d *dirState) {
	if !d.watched || r.fsw == nil {
		return
	}
	_ = r.fsw.Remove(r.AbsOf(rel))
	if r.watchedIDs[d.id] == rel {
		delete(r.watchedIDs, d.id)
	}
	d.watched = false
}

// removeDir forgets the directory rel and everything below it.
func (w *Watcher) removeDir(r *rootState, rel string) {
	for p, d := range r.dirs {
		if !underDir(rel, p) {
			continue
		}
		w.unwatch(r, p, d)
		delete(r.dirs, p)
		delete(r.warned, p)
	}
	var gone []*fileState
	for p, fst := range r.files {
		if p != rel && underDir(rel, p) {
			gone = append(gone, fst)
		}
	}
	sortFiles(gone)
	for _, fst := range gone {
		w.removeFile(r, fst)
	}
	for _, p := range sortedKeys(r.errs) {
		if underDir(rel, p) {
			w.dropErr(r, p)
		}
	}
}

// removeFile forgets a file and reports it if it had been reported.
func (w *Watcher) removeFile(r *rootState, fst *fileState) {
	fst.dead = true
	delete(r.files, fst.rel)
	w.dropErr(r, fst.rel)
	if fst.reported == nil {
		return
	}
	w.log.Info("file removed", zap.String("root", r.dir), zap.String("path", fst.rel))
	switch fst.kind {
	case KindImage:
		w.publish(ImageRemoved{Root: r.dir, RelPath: fst.rel})
	case KindMeta, KindTemplate:
		ev := metaChanged(r, fst)
		ev.Removed = true
		w.publish(ev)
	}
}

func metaChanged(r *rootState, fst *fileState) MetaChanged {
	if fst.kind == KindTemplate {
		return MetaChanged{Root: r.dir, RelPath: fst.rel, Template: true, Affects: parentDir(fst.rel), Since: fst.obsSince}
	}
	return MetaChanged{Root: r.dir, RelPath: fst.rel, Affects: strings.TrimSuffix(fst.rel, MetaSuffix), Since: fst.obsSince}
}

// reportErr sends an Error event unless the same problem was already
// reported for this path.
func (w *Watcher) reportErr(r *rootState, rel string, err error) {
	if old, ok := r.errs[rel]; ok && old.err.Error() == err.Error() {
		r.errs[rel] = errEntry{err: old.err, gen: r.gen}
		return
	}
	r.errs[rel] = errEntry{err: err, gen: r.gen}
	abs := r.AbsOf(rel)
	var le *LinkError
	if errors.As(err, &le) {
		w.log.Warn("symlink not used", zap.String("root", r.dir), zap.String("link", le.Link),
			zap.String("target", le.Target), zap.String("follow_symlinks", string(le.Policy)), zap.Error(err))
	} else {
		w.log.Warn("cannot read", zap.String("root", r.dir), zap.String("path", abs), zap.Error(err))
	}
	w.publish(Error{Root: r.dir, RelPath: rel, Path: abs, Err: err})
}

func (w *Watcher) clearErr(r *rootState, rel string) {
	if _, ok := r.errs[rel]; ok {
		w.dropErr(r, rel)
		w.log.Info("readable again", zap.String("root", r.dir), zap.String("path", r.AbsOf(rel)))
	}
}

// dropErr forgets the problem at rel, if any, and reports that it is gone.
func (w *Watcher) dropErr(r *rootState, rel string) {
	if _, ok := r.errs[rel]; !ok {
		return
	}
	delete(r.errs, rel)
	w.publish(ErrorCleared{Root: r.dir, RelPath: rel, Path: r.AbsOf(rel)})
}

// problems lists the root's current problems by path, at most max of them,
// and how many there are.
func (r *rootState) problems(max int) ([]Error, int) {
	out := []Error{}
	for _, rel := range sortedKeys(r.errs) {
		if len(out) == max {
			break
		}
		out = append(out, Error{Root: r.dir, RelPath: rel, Path: r.AbsOf(rel), Err: r.errs[rel].err})
	}
	return out, len(r.errs)
}
