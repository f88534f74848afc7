package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/pithos"
)

// handleUpload stores the image file in Pithos+ with the hashmap protocol and
// queues its registration. Re-running it is cheap and safe: the server keeps
// the blocks it already has, so only what is still missing is sent.
func (w *Worker) handleUpload(ctx context.Context, t *asynq.Task) error {
	var p UploadPayload
	if err := Decode(t.Payload(), &p, func(p *UploadPayload) int { return p.V }); err != nil {
		return err
	}
	log := Logger(ctx, w.d.Log).With(zap.String("path", p.RelPath), zap.String("object", p.Location()))
	pw := newProgressWriter(resultWriter(t), Progress{Phase: pithos.PhaseHashing, Path: p.RelPath, Object: p.Location(), TotalBytes: p.Size})

	f, err := w.d.Catalog.openImage(p)
	if errors.Is(err, errImageGone) {
		// Not a failure: there is nothing to upload, and whatever failed
		// about this path before is moot now.
		log.Info("image file gone before its upload ran; nothing to do")
		w.resolved(ctx, p.ImageRef, log)
		pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, "gone: "+errImageGone.Error() })
		return nil
	}
	if err != nil {
		return asJobError("upload "+p.RelPath, err)
	}
	if f == nil {
		// The file changed since it settled; the watcher reports the new
		// content under a new task id once it settles again.
		log.Info("image changed since it was queued; the newer version will be uploaded instead")
		pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, "superseded: the file changed after it was queued" })
		return nil
	}
	defer f.Close()

	st, err := w.d.Session.Get(ctx)
	if err != nil {
		return asJobError("upload "+p.RelPath, err)
	}
	if p.Force {
		// A resync inspects the disk again too.
		if fi, err := f.Stat(); err == nil {
			_ = w.d.Detector.Forget(fi)
		}
	}
	if p.Force && w.d.Cache != nil {
		// A resync re-hashes: drop the cached hashmap of this file.
		if ci, err := st.Pithos.ContainerInfo(ctx, p.Container); err == nil {
			if fi, err := f.Stat(); err == nil {
				_ = w.d.Cache.Forget(fi, ci.BlockSize, ci.BlockHash)
			}
		}
	}

	var hashedSoFar, sentSoFar int64
	opts := pithos.UploadOptions{
		BlockConcurrency: w.d.Blocks,
		HashWorkers:      w.d.HashWorkers,
		Cache:            w.d.Cache,
		QuotaFree:        w.quota.free(st.Astakos.DiskspaceFree),
		// A restart re-reports every file: one already stored as it is
		// costs a HEAD, not a new version (a resync writes regardless).
		SkipIfUnchanged:  !p.Force,
		ProgressInterval: 500 * time.Millisecond,
		Progress: func(up pithos.Progress) {
			if w.d.Metrics != nil {
				if !up.CacheHit && up.BytesHashed > hashedSoFar {
					w.d.Metrics.BytesHashed.Add(float64(up.BytesHashed - hashedSoFar))
				}
				if up.BytesSent > sentSoFar {
					w.d.Metrics.BytesSent.Add(float64(up.BytesSent - sentSoFar))
				}
			}
			hashedSoFar, sentSoFar = up.BytesHashed, up.BytesSent
			pw.update(false, func(pr *Progress) {
				pr.Phase, pr.TotalBytes, pr.BytesHashed = up.Phase, up.TotalBytes, up.BytesHashed
				pr.BlocksTotal, pr.BlocksMissing, pr.BlocksSent, pr.BytesSent = up.BlocksTotal, up.BlocksMissing, up.BlocksSent, up.BytesSent
				pr.CacheHit = up.CacheHit
			})
		},
	}
	log.Info("uploading image", zap.Int64("size", p.Size))
	res, err := st.Pithos.Upload(ctx, p.Container, p.Object, f, opts)
	if err != nil {
		return asJobError(fmt.Sprintf("upload %s to %s", p.RelPath, p.Location()), err)
	}
	// An object found already holding the file (Unchanged) was checked, not
	// uploaded: it counts neither as de-duplication nor as throughput.
	if w.d.Metrics != nil && !res.Unchanged {
		w.d.Metrics.BlocksSent.Add(float64(res.BlocksSent))
		w.d.Metrics.BlocksDeduped.Add(float64(max(0, res.BlocksTotal-res.BlocksMissing)))
		w.d.Metrics.BytesDeduped.Add(float64(max(0, res.Bytes-res.BytesSent)))
		if secs := res.Duration.Seconds(); secs > 0 && res.Bytes > 0 {
			w.d.Metrics.UploadThroughput.Observe(float64(res.Bytes) / secs)
		}
	}
	log.Info("image uploaded", zap.String("hash", res.Hash), zap.Int64("blocks", res.BlocksTotal),
		zap.Int64("blocks_sent", res.BlocksSent), zap.Int64("bytes_sent", res.BytesSent),
		zap.Bool("cache_hit", res.CacheHit), zap.Bool("unchanged", res.Unchanged), zap.Duration("took", res.Duration))

	facts := FileFacts{Root: p.Root, RelPath: p.RelPath, Size: p.Size, ModTime: time.Unix(0, p.MtimeNs), Dev: p.Dev, Inode: p.Inode}
	req, err := w.d.Catalog.RegisterRequest(facts, res.Hash, res.UUID, "upload", p.Force)
	if err != nil {
		return asJobError("queue the registration of "+p.RelPath, err)
	}
	out, err := w.d.Enqueuer.Enqueue(ctx, req)
	if err != nil {
		// The upload is done and costs nothing to repeat: retry the task so
		// that the registration is not lost.
		return fmt.Errorf("queue the registration of %s: %w", p.RelPath, err)
	}
	log.Info("registration queued", zap.String("task", req.ID), zap.String("outcome", string(out)))
	w.resolved(ctx, p.ImageRef, log, TypeUpload)
	pw.update(true, func(pr *Progress) {
		pr.Phase, pr.ObjectHash = PhaseDone, res.Hash
		pr.BlocksTotal, pr.BlocksMissing, pr.BlocksSent, pr.BytesSent = res.BlocksTotal, res.BlocksMissing, res.BlocksSent, res.BytesSent
		pr.CacheHit = res.CacheHit
		pr.Note = "registration " + req.ID + " " + string(out)
	})
	return nil
}
