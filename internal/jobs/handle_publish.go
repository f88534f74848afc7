package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// handlePublish applies the image's visibility and member list. It reads
// first and writes only what differs, so it is idempotent.
func (w *Worker) handlePublish(ctx context.Context, t *asynq.Task) error {
	var p PublishPayload
	if err := Decode(t.Payload(), &p, func(p *PublishPayload) int { return p.V }); err != nil {
		return err
	}
	log := Logger(ctx, w.d.Log).With(zap.String("path", p.RelPath), zap.String("object", p.Location()), zap.String("image_id", p.ImageID))
	pw := newProgressWriter(resultWriter(t), Progress{Phase: PhasePublishing, Path: p.RelPath, Object: p.Location(), ImageID: p.ImageID})
	what := "publish " + p.RelPath
	st, err := w.d.Session.Get(ctx)
	if err != nil {
		return asJobError(what, err)
	}
	release, err := w.lock.acquire(ctx, p.Location())
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer release()
	changed, err := st.Images.Publish(ctx, p.ImageID, p.Public, p.Members)
	if err != nil {
		return asJobError(what, err)
	}
	note := "already published as described"
	if changed {
		note = "visibility or members updated"
	}
	log.Info("image published", zap.Bool("public", p.Public), zap.Int("members", len(p.Members)), zap.Bool("changed", changed))
	w.resolved(ctx, p.ImageRef, log, TypePublish)
	pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, note })
	return nil
}

// handleRepublish runs the republish sweep and stores its report as the
// task's result.
func (w *Worker) handleRepublish(ctx context.Context, t *asynq.Task) error {
	var p RepublishPayload
	if err := Decode(t.Payload(), &p, func(p *RepublishPayload) int { return p.V }); err != nil {
		return err
	}
	rep, err := Sweep(ctx, SweepDeps{Catalog: w.d.Catalog, Session: w.d.Session, Enqueuer: w.d.Enqueuer,
		Log: Logger(ctx, w.d.Log), Now: w.d.Now, Detector: w.d.Detector}, SweepOptions{Force: p.Force, DryRun: p.DryRun})
	if err != nil {
		return asJobError("republish sweep", err)
	}
	if rw := resultWriter(t); rw != nil {
		if b, err := json.Marshal(rep); err == nil {
			_, _ = rw.Write(b)
		}
	}
	return nil
}
