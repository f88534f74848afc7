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

// handleRepublish runs the republish sweep of its scope and stores its
// report as the task's result. A node's sweep runs on that node; the sweep
// of an older syncd, which covered every root of whichever node took it, is
// split into one sweep per known node and one of the shared roots.
func (w *Worker) handleRepublish(ctx context.Context, t *asynq.Task) error {
	var p RepublishPayload
	if err := Decode(t.Payload(), &p, func(p *RepublishPayload) int { return p.V }); err != nil {
		return err
	}
	log := Logger(ctx, w.d.Log).With(zap.String("tick", p.Tick), zap.String("scope", scopeName(p.Scope)))
	me := w.d.Catalog.Node()
	switch {
	case p.Scope == SweepAllRoots:
		nodes, err := w.knownNodes(ctx)
		if err != nil {
			return fmt.Errorf("republish sweep: listing the nodes: %w", err)
		}
		reqs := []Request{SweepRequest(RepublishPayload{V: PayloadVersion, Force: p.Force, DryRun: p.DryRun, Tick: p.Tick, Scope: SweepSharedRoots})}
		for _, n := range nodes {
			reqs = append(reqs, SweepRequest(RepublishPayload{V: PayloadVersion, Force: p.Force, DryRun: p.DryRun, Tick: p.Tick, Scope: SweepNodeRoots, Node: n}))
		}
		for _, r := range reqs {
			out, err := w.d.Enqueuer.Enqueue(ctx, r)
			if err != nil {
				return fmt.Errorf("republish sweep: %w", err)
			}
			log.Info("sweep of an older syncd split per node", zap.String("to", r.Queue), zap.String("task", r.ID), zap.String("outcome", string(out)))
		}
		return nil
	case p.Scope == SweepNodeRoots && p.Node != me:
		out, err := w.d.Enqueuer.Enqueue(ctx, SweepRequest(p))
		if err != nil {
			return fmt.Errorf("republish sweep: forwarding to node %s: %w", p.Node, err)
		}
		log.Info("task forwarded", zap.String("to", NodeQueue(p.Node)), zap.String("outcome", string(out)))
		return nil
	}
	rep, err := Sweep(ctx, SweepDeps{Catalog: w.d.Catalog, Session: w.d.Session, Enqueuer: w.d.Enqueuer,
		Log: log, Now: w.d.Now, Detector: w.d.Detector, Redis: w.d.Redis}, SweepOptions{Force: p.Force, DryRun: p.DryRun, Scope: p.Scope})
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
