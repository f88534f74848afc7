package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Defaults for Options.
const (
	DefaultSettle = 5 * time.Second
	DefaultRescan = time.Minute
	DefaultPoll   = 10 * time.Second
)

// Root is one watched directory tree.
type Root struct {
	// Dir is the directory as configured; events carry it unchanged in
	// their Root field.
	Dir string
	// Patterns are the image globs matched against base names; empty means
	// DefaultPatterns.
	Patterns []string
	// Links is the symlink policy; "" means LinksInside.
	Links LinkPolicy
	// Poll disables fsnotify for this root and polls every Options.Poll
	// instead (for NFS, SMB, FUSE and similar, where inotify sees nothing of
	// changes made by other hosts).
	Poll bool
}

// Options configure a Watcher.
type Options struct {
	Roots []Root
	// Settle is how long a file's size and mtime must stay unchanged before
	// it is reported. 0 means DefaultSettle; negative means no wait beyond a
	// second stat.
	Settle time.Duration
	// Rescan is the period of full rescans. 0 means DefaultRescan; negative
	// disables periodic rescans (the config's "rescan: 0" maps to -1).
	Rescan time.Duration
	// Poll is how often roots without fsnotify (Root.Poll, watch limit hit,
	// or a root that does not exist yet) are rescanned. 0 means
	// DefaultPoll, capped at Rescan.
	Poll   time.Duration
	Logger *zap.Logger
}

// Watcher watches the roots. Create it with New, start it with Run and read
// Events until that channel is closed.
type Watcher struct {
	settle time.Duration
	rescan time.Duration
	poll   time.Duration
	log    *zap.Logger
	roots  []*rootState

	raw    *queue[rawEvent]
	out    *queue[Event]
	events chan Event
	reqs   chan request
	done   chan struct{} // closed when Run returns
	ran    atomic.Bool

	// Core-goroutine state.
	due     dueHeap
	readers sync.WaitGroup

	hooks hooks
}

// hooks let tests reach paths that are hard to provoke for real.
type hooks struct {
	// addWatch replaces fsw.Add (e.g. to simulate ENOSPC).
	addWatch func(fsw *fsnotify.Watcher, path string) error
	// dropEvents makes the readers discard fsnotify events, as the kernel
	// does when its queue overflows.
	dropEvents atomic.Bool
}

// rawEvent is what a reader hands to the core: an fsnotify event or error.
type rawEvent struct {
	root *rootState
	ev   fsnotify.Event
	err  error
}

type request struct {
	rescan  bool
	emitAll bool
	affects *MetaChanged      // Affected's question
	reply   chan []ImageReady // Snapshot's answer; closed when a rescan is done
}

// New validates the options and prepares a Watcher. Nothing is touched on
// disk until Run.
func New(opts Options) (*Watcher, error) {
	if len(opts.Roots) == 0 {
		return nil, errors.New("watch: no roots configured")
	}
	w := &Watcher{
		settle: opts.Settle,
		rescan: opts.Rescan,
		poll:   opts.Poll,
		log:    opts.Logger,
		raw:    newQueue[rawEvent](),
		out:    newQueue[Event](),
		events: make(chan Event),
		reqs:   make(chan request),
		done:   make(chan struct{}),
	}
	switch {
	case w.settle == 0:
		w.settle = DefaultSettle
	case w.settle < 0:
		w.settle = 0
	}
	if w.rescan == 0 {
		w.rescan = DefaultRescan
	}
	if w.poll <= 0 {
		w.poll = DefaultPoll
		if w.rescan > 0 && w.rescan < w.poll {
			w.poll = w.rescan
		}
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	roots, err := NewRoots(opts.Roots)
	if err != nil {
		return nil, err
	}
	for _, t := range roots.Trees() {
		if t.links == LinksAny {
			w.log.Warn("follow_symlinks: any — a symlink dropped into this folder makes syncd upload any file it can read, wherever it is",
				zap.String("root", t.dir))
		}
		w.roots = append(w.roots, &rootState{
			Tree:       t,
			polling:    t.poll,
			files:      map[string]*fileState{},
			dirs:       map[string]*dirState{},
			watchedIDs: map[FileID]string{},
			errs:       map[string]errEntry{},
			warned:     map[string]bool{},
		})
	}
	return w, nil
}

// Events delivers what the watcher finds, in order. It is closed after Run
// returns. Events are queued without limit rather than dropped, so read it
// steadily.
func (w *Watcher) Events() <-chan Event { return w.events }

// ForceRescan rescans every root now and waits for it to finish. With
// emitAll, every settled image and metafile is reported again (ImageReady,
// MetaChanged, after the RescanDone events) even if unchanged, so the caller
// can re-derive all its work;
// without it, only changes are reported, as in a periodic rescan. It waits
// for Run to start, and fails once Run has returned.
func (w *Watcher) ForceRescan(ctx context.Context, emitAll bool) error {
	_, err := w.ask(ctx, request{rescan: true, emitAll: emitAll})
	return err
}

// Snapshot returns every image that is reported as ready and has not changed
// since (one being rewritten will be reported when it settles again), sorted
// by root then path, as of the watcher's last look.
func (w *Watcher) Snapshot(ctx context.Context) ([]ImageReady, error) {
	return w.ask(ctx, request{})
}

// Affected is Snapshot narrowed to the images a metafile change affects:
// one lookup for an image's own metafile, so that a folder of many images
// with their metafiles costs each metafile event a map lookup rather than a
// listing of every image.
func (w *Watcher) Affected(ctx context.Context, m MetaChanged) ([]ImageReady, error) {
	return w.ask(ctx, request{affects: &m})
}

var errStopped = errors.New("watch: watcher is not running")

// ask hands req to Run's goroutine, which owns all state, and waits for its
// answer (a rescan closes the reply with none).
func (w *Watcher) ask(ctx context.Context, req request) ([]ImageReady, error) {
	req.reply = make(chan []ImageReady, 1)
	select {
	case w.reqs <- req:
	case <-w.done:
		return nil, errStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case imgs := <-req.reply:
		return imgs, nil
	case <-w.done:
		return nil, errStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run scans every root, then watches until ctx is done. It returns nil after
// ctx is done (promptly, even mid-scan), and an error only if called twice.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.ran.CompareAndSwap(false, true) {
		return errors.New("watch: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var emitter sync.WaitGroup
	emitter.Go(func() { w.emit(ctx) })
	defer func() {
		cancel()
		for _, r := range w.roots {
			w.closeNotify(r)
		}
		w.readers.Wait()
		emitter.Wait()
		close(w.done)
		close(w.events)
	}()

	for _, r := range w.roots {
		if ctx.Err() != nil {
			return nil
		}
		w.fullScan(ctx, r, true)
	}
	w.loop(ctx)
	return nil
}

func (w *Watcher) loop(ctx context.Context) {
	settle := time.NewTimer(time.Hour)
	defer settle.Stop()
	var rescanC <-chan time.Time
	if w.rescan > 0 {
		t := time.NewTicker(w.rescan)
		defer t.Stop()
		rescanC = t.C
	}
	poll := time.NewTicker(w.poll)
	defer poll.Stop()

	for {
		if len(w.due) > 0 {
			settle.Reset(time.Until(w.due[0].due))
		} else {
			settle.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-w.raw.ready:
			w.handleRaw(ctx, w.raw.take())
		case <-settle.C:
			w.runDue(time.Now())
		case <-rescanC:
			for _, r := range w.roots {
				w.fullScan(ctx, r, false)
			}
		case <-poll.C:
			for _, r := range w.roots {
				if r.fsw == nil || !r.present {
					w.fullScan(ctx, r, false)
				}
			}
		case req := <-w.reqs:
			w.serve(ctx, req)
		}
	}
}

func (w *Watcher) serve(ctx context.Context, req request) {
	if req.affects != nil {
		req.reply <- w.affected(*req.affects)
		return
	}
	if !req.rescan {
		req.reply <- w.snapshot()
		return
	}
	for _, r := range w.roots {
		w.fullScan(ctx, r, false)
	}
	if ctx.Err() != nil {
		return
	}
	if req.emitAll {
		for _, r := range w.roots {
			for _, rel := range sortedKeys(r.files) {
				if fst := r.files[rel]; fst.settled() {
					w.report(r, fst, *fst.reported)
				}
			}
		}
	}
	close(req.reply)
}

func (w *Watcher) snapshot() []ImageReady {
	var out []ImageReady
	for _, r := range w.roots {
		for _, rel := range sortedKeys(r.files) {
			if fst := r.files[rel]; fst.kind == KindImage && fst.settled() {
				out = append(out, r.imageReady(fst, *fst.reported))
			}
		}
	}
	return out
}

func (w *Watcher) affected(m MetaChanged) []ImageReady {
	var out []ImageReady
	for _, r := range w.roots {
		if r.dir != m.Root {
			continue
		}
		if !m.Template {
			if fst := r.files[m.Affects]; fst != nil && fst.kind == KindImage && fst.settled() {
				out = append(out, r.imageReady(fst, *fst.reported))
			}
			continue
		}
		for _, rel := range sortedKeys(r.files) {
			if fst := r.files[rel]; fst.kind == KindImage && fst.settled() && m.AffectsImage(rel) {
				out = append(out, r.imageReady(fst, *fst.reported))
			}
		}
	}
	return out
}

// emit moves events from the out queue to the channel until ctx is done.
func (w *Watcher) emit(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.out.ready:
		}
		for _, ev := range w.out.take() {
			select {
			case w.events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (w *Watcher) publish(ev Event) { w.out.push(ev) }

// openNotify gives a root its fsnotify watcher and reader goroutine, or
// switches it to polling if inotify is unavailable.
func (w *Watcher) openNotify(r *rootState) {
	if r.polling || r.fsw != nil {
		return
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		w.fallBackToPolling(r, err)
		return
	}
	r.fsw = fsw
	r.stopReader = make(chan struct{})
	stop := r.stopReader
	w.readers.Go(func() { w.read(r, fsw, stop) })
}

func (w *Watcher) read(r *rootState, fsw *fsnotify.Watcher, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case ev, ok := <-fsw.Events:
			if !ok {
				return
			}
			if !w.hooks.dropEvents.Load() {
				w.raw.push(rawEvent{root: r, ev: ev})
			}
		case err, ok := <-fsw.Errors:
			if !ok {
				return
			}
			w.raw.push(rawEvent{root: r, err: err})
		}
	}
}

func (w *Watcher) closeNotify(r *rootState) {
	if r.fsw == nil {
		return
	}
	// Close first: it waits for fsnotify's own reader, which may be blocked
	// handing us an event until it sees the watcher is closing.
	if err := r.fsw.Close(); err != nil {
		w.log.Warn("closing fsnotify watcher", zap.String("root", r.dir), zap.Error(err))
	}
	close(r.stopReader)
	r.fsw = nil
	for _, d := range r.dirs {
		d.watched = false
	}
	clear(r.watchedIDs)
}

func (w *Watcher) fallBackToPolling(r *rootState, cause error) {
	w.closeNotify(r)
	r.polling = true
	err := fmt.Errorf("fsnotify unavailable, polling every %s instead: %w", w.poll, cause)
	if isWatchLimit(cause) {
		err = fmt.Errorf("%w: %w", ErrWatchLimit, cause)
	}
	w.log.Warn("fsnotify unavailable for this root; polling instead",
		zap.String("root", r.dir), zap.Duration("every", w.poll), zap.Error(err))
	w.publish(Error{Root: r.dir, Path: r.abs, Err: err, Notice: true})
}

func (w *Watcher) addWatch(r *rootState, abs string) error {
	if w.hooks.addWatch != nil {
		return w.hooks.addWatch(r.fsw, abs)
	}
	return r.fsw.Add(abs)
}

// handleRaw applies a batch of fsnotify events and errors. Roots whose
// kernel queue overflowed are rescanned once, after the batch.
func (w *Watcher) handleRaw(ctx context.Context, batch []rawEvent) {
	var rescan []*rootState
	for _, re := range batch {
		r := re.root
		if re.err != nil {
			if !errors.Is(re.err, fsnotify.ErrEventOverflow) {
				w.log.Warn("fsnotify error", zap.String("root", r.dir), zap.Error(re.err))
				continue
			}
			w.log.Warn("fsnotify event queue overflowed; rescanning (consider raising fs.inotify.max_queued_events)",
				zap.String("root", r.dir))
			if !slices.Contains(rescan, r) {
				rescan = append(rescan, r)
			}
			continue
		}
		if r.fsw == nil {
			continue // switched to polling; stale event
		}
		if w.handleEvent(ctx, r, re.ev) && !slices.Contains(rescan, r) {
			rescan = append(rescan, r)
		}
	}
	for _, r := range rescan {
		w.fullScan(ctx, r, false)
	}
}

// handleEvent applies one fsnotify event; it returns true when the root
// needs a full rescan.
func (w *Watcher) handleEvent(ctx context.Context, r *rootState, ev fsnotify.Event) bool {
	rel, ok := r.relOf(ev.Name)
	if !ok {
		return false
	}
	if rel == "" {
		// The root itself was removed or renamed away.
		return ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)
	}
	if ignoredPath(rel) {
		return false
	}
	if ev.Op == fsnotify.Chmod {
		if fst := r.files[rel]; fst != nil && fst.unreadable {
			w.schedule(r, fst, 0)
		}
		return false
	}
	w.look(ctx, r, rel)
	return false
}

// look brings the state of one path in line with what is on disk now.
func (w *Watcher) look(ctx context.Context, r *rootState, rel string) {
	e := r.Lstat(rel)
	switch {
	case e.Gone:
		w.forget(r, rel)
		return
	case e.Dir:
		if fst := r.files[rel]; fst != nil {
			w.removeFile(r, fst)
		}
		if _, known := r.dirs[parentDir(rel)]; known {
			w.scanTree(ctx, r, rel)
		}
		return
	case e.Symlink && !e.Usable():
		// A link to a directory, a broken one, or one the rules refuse.
		w.forget(r, rel)
		w.take(r, e)
		return
	}
	if d := r.dirs[rel]; d != nil {
		w.removeDir(r, rel) // a directory was replaced by a file
	}
	if _, known := r.dirs[parentDir(rel)]; !known && e.Usable() {
		return // inside a directory we do not track (e.g. being removed)
	}
	w.take(r, e)
}

// forget drops whatever was known at rel: a file, a directory tree, a
// problem.
func (w *Watcher) forget(r *rootState, rel string) {
	w.dropErr(r, rel)
	if _, ok := r.dirs[rel]; ok {
		w.removeDir(r, rel)
	}
	if fst := r.files[rel]; fst != nil {
		w.removeFile(r, fst)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
