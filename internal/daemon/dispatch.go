package daemon

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/metrics"
	"github.com/imagesync/imagesync/internal/watch"
)

// dispatcher turns watcher events into jobs.
type dispatcher struct {
	cfg     *config.Config
	enq     *jobs.Enqueuer
	catalog *jobs.Catalog
	log     *zap.Logger
	metrics *metrics.Metrics
	watcher *watch.Watcher
	// skipped records what the watcher could not use, for syncctl status.
	skipped *jobs.Skipped

	// enqueueFailed records an enqueue lost to an unreachable Redis.
	enqueueFailed atomic.Bool
	// queues are the queues this daemon serves (see Enqueuer.RegisterQueues).
	queues []string
	// failedOver receives a token when Sentinel promotes a new master.
	failedOver chan struct{}
	// sweep compares this node's images with the catalog and queues what
	// is missing (jobs.Sweep, not forced); recoverySweepDelay is how long
	// after a loss it waits to run it.
	sweep              func(context.Context) error
	recoverySweepDelay time.Duration

	// uploadsQueued is when this dispatcher queued each image's new upload
	// (see followedByUpload); only run's goroutine touches it.
	uploadsQueued map[imageKey]time.Time
	prunedAt      time.Time
}

type imageKey struct{ root, rel string }

// uploadsQueuedMemory bounds how long a queued upload is remembered. It
// only saves work: a metafile reported later is followed as usual.
const uploadsQueuedMemory = 2 * time.Minute

// redisCheckInterval is how often the dispatcher checks that Redis is
// reachable (see watchRedis).
const redisCheckInterval = time.Second

// recoverySweepDelay lets every write that could still land on a new master
// land before the recovery sweep looks: a job that finished while the old
// master died has its completion retried by asynq until its lease ends
// (asynq's 30 s lease), and the sweep must see that completion. A margin
// covers the failover itself.
const recoverySweepDelay = 45 * time.Second

// failover tells watchRedis that the master changed (see WatchFailovers).
func (d *dispatcher) failover() {
	select {
	case d.failedOver <- struct{}{}:
	default:
	}
}

// run consumes events until the channel closes. onReady is called after
// every root's first scan.
func (d *dispatcher) run(ctx context.Context, events <-chan watch.Event, onReady func()) {
	initial := map[string]bool{}
	readyDone := false
	go d.watchRedis(ctx, redisCheckInterval)
	for ev := range events {
		switch e := ev.(type) {
		case watch.ImageReady:
			d.imageReady(ctx, e)
		case watch.MetaChanged:
			d.metaChanged(ctx, e)
		case watch.ImageRemoved:
			d.imageRemoved(ctx, e)
		case watch.RescanDone:
			if e.Initial {
				initial[e.Root] = true
			}
			d.metrics.FilesSeen.Set(float64(e.Images))
			d.recordSkipped(ctx, e)
			if !readyDone && len(initial) >= len(d.cfg.Watch) {
				readyDone = true
				onReady()
			}
		case watch.Error:
			d.metrics.WatchErrors.Inc()
			d.log.Warn("cannot read under a watch root", zap.String("root", e.Root), zap.String("path", e.Path), zap.Error(e.Err))
			d.recordSkipped(ctx, e)
		case watch.ErrorCleared:
			d.recordSkipped(ctx, e)
		}
	}
}

// recordSkipped keeps the node's record of unusable files (jobs.Skipped) in
// step with the watcher. It is a view for operators: failing to write it
// costs nothing else, and the next full scan rewrites it.
func (d *dispatcher) recordSkipped(ctx context.Context, ev watch.Event) {
	if d.skipped == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	entry := func(e watch.Error) jobs.SkippedFile {
		return jobs.SkippedFile{Root: e.Root, Path: e.Path, Reason: e.Err.Error(), Since: time.Now().UTC()}
	}
	var err error
	switch e := ev.(type) {
	case watch.Error:
		if e.Notice {
			return
		}
		err = d.skipped.Add(ctx, entry(e))
	case watch.ErrorCleared:
		err = d.skipped.Remove(ctx, e.Path)
	case watch.RescanDone:
		files := make([]jobs.SkippedFile, 0, len(e.Problems))
		for _, p := range e.Problems {
			files = append(files, entry(p))
		}
		err = d.skipped.SetRoot(ctx, e.Root, files)
	}
	if err != nil && ctx.Err() == nil {
		d.log.Debug("cannot record skipped files", zap.Error(err))
	}
}

func (d *dispatcher) imageReady(ctx context.Context, e watch.ImageReady) {
	log := d.log.With(zap.String("root", e.Root), zap.String("path", e.RelPath))
	req, err := d.catalog.UploadRequest(facts(e), false)
	if err != nil {
		log.Error("image cannot be uploaded", zap.Error(err))
		return
	}
	at := time.Now()
	out, err := d.enq.Enqueue(ctx, req)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			d.enqueueFailed.Store(true)
			log.Error("cannot enqueue upload", zap.Error(err))
		}
		return
	}
	if out == jobs.Enqueued {
		d.uploadQueued(imageKey{e.Root, e.RelPath}, at)
	}
	log.Info("image ready", zap.String("task", req.ID), zap.String("outcome", string(out)), zap.Int64("size", e.Size))
}

func (d *dispatcher) imageRemoved(ctx context.Context, e watch.ImageRemoved) {
	log := d.log.With(zap.String("root", e.Root), zap.String("path", e.RelPath))
	// A file that is gone has nothing left to fix: its failures go.
	if ref, err := d.catalog.Ref(e.Root, e.RelPath); err == nil {
		if err := d.enq.Failures().Resolve(ctx, ref.Location()); err != nil {
			log.Warn("cannot clear the removed image's failures", zap.Error(err))
		}
	}
	w, err := d.catalog.Root(e.Root)
	if err != nil || !w.UnregisterDeleted {
		log.Info("image file removed; its registered image is left as it is (set unregister_deleted to remove it)")
		return
	}
	req, err := d.catalog.UnregisterRequest(e.Root, e.RelPath, time.Now())
	if err != nil {
		log.Error("cannot unregister the removed image", zap.Error(err))
		return
	}
	out, err := d.enq.Enqueue(ctx, req)
	if err != nil {
		d.enqueueFailed.Store(true)
		log.Error("cannot enqueue unregistration", zap.Error(err))
		return
	}
	log.Info("image file removed: unregistration queued", zap.String("task", req.ID), zap.String("outcome", string(out)))
}

func (d *dispatcher) metaChanged(ctx context.Context, e watch.MetaChanged) {
	images, err := d.watcher.Affected(ctx, e)
	if err != nil {
		return
	}
	for _, img := range images {
		log := d.log.With(zap.String("root", img.Root), zap.String("path", img.RelPath), zap.String("metafile", e.RelPath))
		if d.followedByUpload(e, img) {
			log.Debug("metafile seen: the upload queued after it reads it")
			continue
		}
		fu, err := jobs.FollowMetafiles(ctx, d.enq, d.catalog, facts(img))
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				if jobs.Classify(err) != jobs.Permanent {
					d.enqueueFailed.Store(true) // Redis: rescan once it answers
				}
				log.Error("cannot re-register after a metafile change", zap.Error(err))
			}
			continue
		}
		if fu.Registers() {
			log.Info("metafile changed: registration queued", zap.String("task", fu.Request.ID))
		} else {
			// Found at start, or changed while the image's work is under
			// way: that work reads the metafiles when it runs.
			log.Debug("metafile seen: the image's work in hand follows it", zap.String("task", fu.Request.ID), zap.String("outcome", string(fu.Outcome)))
		}
	}
}

// uploadQueued notes that a new upload of the image was queued at (or
// after) at, and forgets the notes older than uploadsQueuedMemory.
func (d *dispatcher) uploadQueued(k imageKey, at time.Time) {
	if d.uploadsQueued == nil {
		d.uploadsQueued = map[imageKey]time.Time{}
	}
	if at.Sub(d.prunedAt) > uploadsQueuedMemory {
		for k, t := range d.uploadsQueued {
			if at.Sub(t) > uploadsQueuedMemory {
				delete(d.uploadsQueued, k)
			}
		}
		d.prunedAt = at
	}
	d.uploadsQueued[k] = at
}

// followedByUpload reports whether the metafile change e needs nothing done
// for img: this dispatcher queued a new upload of img after the metafile
// became what e reports, and that upload's registration reads the metafiles
// when it runs, later still. An image and its metafile dropped together are
// the common case, and following the metafile then only costs Redis round
// trips that find the upload queued (see jobs.FollowMetafiles). A removal
// is always followed.
func (d *dispatcher) followedByUpload(e watch.MetaChanged, img watch.ImageReady) bool {
	if e.Removed || e.Since.IsZero() {
		return false
	}
	k := imageKey{img.Root, img.RelPath}
	at, ok := d.uploadsQueued[k]
	if !ok || !at.After(e.Since) {
		return false
	}
	if !e.Template {
		delete(d.uploadsQueued, k) // its one metafile is followed now
	}
	return true
}

// watchRedis re-derives all work from the watched folders once Redis is
// reachable again after it was not, or after Sentinel promoted a new master:
// enqueues that failed meanwhile are lost, a Redis that restarted without its
// data has forgotten every queued task, and a promoted replica lacks the
// writes the old master acknowledged but had not replicated yet (an
// enqueue, a task's completion). The periodic rescan reports only changed
// files, so without this those images would wait for the next syncd
// restart. Deterministic task ids make the re-report free for work Redis
// still holds.
//
// A rescan re-queues uploads, but it cannot see a job that completed on the
// new master while the tasks it queued (a registration, a publish) were
// written only to the old one: the upload's id is then "done". So after a
// loss of Redis state a recovery sweep (jobs.Sweep, not forced) follows,
// once asynq's in-flight completions have landed (recoverySweepDelay): it
// queues the registration of every uploaded but unregistered image and
// re-registers (and so re-publishes) every image that drifted.
func (d *dispatcher) watchRedis(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	down := false
	var sweepAt time.Time
	for {
		failedOver := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.failedOver:
			failedOver = true
		}
		_, err := d.enq.Inspector().Queues()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !down {
				d.log.Warn("Redis is unreachable: queueing paused until it is back", zap.Error(err))
			}
			// A failover seen while Redis does not answer yet is handled
			// as Redis coming back.
			down = true
			continue
		case down || failedOver || d.enqueueFailed.Load():
			if failedOver {
				d.log.Info("rescanning the watched folders to re-queue what the old Redis master may have lost")
			} else {
				d.log.Info("Redis is reachable again: rescanning the watched folders to re-queue what was lost")
			}
			if down || failedOver {
				if err := d.enq.RegisterQueues(ctx, d.queues...); err != nil {
					d.log.Warn("cannot list this node's queues again for syncctl", zap.Error(err))
				}
				if d.sweep != nil {
					sweepAt = time.Now().Add(d.recoverySweepDelay)
				}
			}
			down = false
			d.enqueueFailed.Store(false)
			if err := d.watcher.ForceRescan(ctx, true); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Warn("rescan after Redis came back", zap.Error(err))
				d.enqueueFailed.Store(true)
			}
		}
		if !sweepAt.IsZero() && !time.Now().Before(sweepAt) {
			d.log.Info("recovery sweep: queueing the registration of images uploaded while Redis lost state")
			if err := d.sweep(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				d.log.Warn("recovery sweep failed; trying again in a minute", zap.Error(err))
				sweepAt = time.Now().Add(time.Minute)
			} else {
				sweepAt = time.Time{}
			}
		}
	}
}

func facts(e watch.ImageReady) jobs.FileFacts {
	return jobs.FileFacts{Root: e.Root, RelPath: e.RelPath, AbsPath: e.AbsPath, Size: e.Size, ModTime: e.ModTime, Dev: e.Dev, Inode: e.Inode}
}
