package watch

import (
	"container/heap"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// sig is what "unchanged" means for a file.
type sig struct {
	size  int64
	mtime int64 // UnixNano
	dev   uint64
	ino   uint64
}

func sigOf(info fs.FileInfo) sig {
	id := IDOf(info)
	return sig{size: info.Size(), mtime: info.ModTime().UnixNano(), dev: id.Dev, ino: id.Ino}
}

func (s sig) id() FileID { return FileID{Dev: s.dev, Ino: s.ino} }

// fileState tracks one image or metafile.
type fileState struct {
	rel        string
	kind       Kind
	obs        sig       // last observed
	obsSince   time.Time // when obs was first observed: every write that made it came before
	reported   *sig      // last reported; nil if never
	due        time.Time // when obs will have been stable for Settle
	queued     bool      // has an entry in the due heap
	dead       bool      // forgotten; its heap entry is stale
	unreadable bool      // stable but could not be opened; retried on rescans and chmod
	gen        uint64
}

// settled reports a file whose last report is still current.
func (fst *fileState) settled() bool {
	return fst.reported != nil && *fst.reported == fst.obs && !fst.unreadable
}

func sortFiles(fss []*fileState) {
	slices.SortFunc(fss, func(a, b *fileState) int { return strings.Compare(a.rel, b.rel) })
}

// observe records what a scan or an event saw of a file just now.
func (w *Watcher) observe(r *rootState, rel string, k Kind, s sig) {
	fst := r.files[rel]
	if fst == nil {
		fst = &fileState{rel: rel, kind: k, obs: s, obsSince: time.Now()}
		r.files[rel] = fst
		fst.gen = r.gen
		w.schedule(r, fst, w.settle)
		return
	}
	fst.gen = r.gen
	if s != fst.obs {
		fst.obs, fst.obsSince = s, time.Now()
		w.schedule(r, fst, w.settle)
		return
	}
	if fst.unreadable && !fst.queued {
		w.schedule(r, fst, 0) // permissions may have been fixed
	}
}

// schedule checks fst again after delay from now. (Now, not the start of a
// long scan or batch: the settle time is counted from the observation.) A
// file keeps at most one heap entry: moving its due time later is resolved
// when the entry pops.
func (w *Watcher) schedule(r *rootState, fst *fileState, delay time.Duration) {
	due := time.Now().Add(delay)
	fst.due = due
	if !fst.queued {
		fst.queued = true
		heap.Push(&w.due, dueEntry{due: due, root: r, fst: fst})
	}
}

// runDue checks every file whose settle time has come.
func (w *Watcher) runDue(now time.Time) {
	for len(w.due) > 0 && !w.due[0].due.After(now) {
		e := heap.Pop(&w.due).(dueEntry)
		if e.fst.dead {
			continue
		}
		if e.fst.due.After(e.due) {
			heap.Push(&w.due, dueEntry{due: e.fst.due, root: e.root, fst: e.fst})
			continue
		}
		e.fst.queued = false
		w.check(e.root, e.fst)
	}
}

// check looks at a file whose observation is Settle old, through the rules
// again: unchanged means it settled, and it is reported if it can be opened;
// changed means wait again.
func (w *Watcher) check(r *rootState, fst *fileState) {
	e := r.Lstat(fst.rel)
	switch {
	case e.Gone:
		w.removeFile(r, fst)
		return
	case e.Err != nil:
		fst.unreadable = true
		w.reportErr(r, fst.rel, e.Err)
		return
	case e.Info == nil:
		// Replaced by a directory or something special; the event or scan
		// that sees the new thing takes it from here.
		w.removeFile(r, fst)
		return
	}
	s := sigOf(e.Info)
	if s != fst.obs {
		fst.obs, fst.obsSince = s, time.Now()
		w.schedule(r, fst, w.settle)
		return
	}
	if fst.reported != nil && *fst.reported == s && !fst.unreadable {
		return
	}
	f, err := r.Open(fst.rel, s.id())
	if errors.Is(err, ErrChanged) {
		w.schedule(r, fst, w.settle)
		return
	}
	if err != nil {
		fst.unreadable = true
		w.reportErr(r, fst.rel, fmt.Errorf("cannot read (fix its permissions; it is retried at each rescan): %w", err))
		return
	}
	f.Close()
	fst.unreadable = false
	w.clearErr(r, fst.rel)
	fst.reported = &s
	w.report(r, fst, s)
}

func (w *Watcher) report(r *rootState, fst *fileState, s sig) {
	switch fst.kind {
	case KindImage:
		w.log.Debug("image ready", zap.String("root", r.dir), zap.String("path", fst.rel), zap.Int64("size", s.size))
		w.publish(r.imageReady(fst, s))
	case KindMeta, KindTemplate:
		w.log.Debug("metafile changed", zap.String("root", r.dir), zap.String("path", fst.rel))
		w.publish(metaChanged(r, fst))
	}
}

type dueEntry struct {
	due  time.Time
	root *rootState
	fst  *fileState
}

// dueHeap is a min-heap of pending checks by due time.
type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*h = old[:len(old)-1]
	return e
}
