package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/pithos"
)

// handleUnregister removes the registration of an image whose file was
// deleted from its folder. The Pithos object (and its .meta) stay, so the
// image can be registered again from the cloud side; a file that came back
// meanwhile keeps its image.
func (w *Worker) handleUnregister(ctx context.Context, t *asynq.Task) error {
	var p UnregisterPayload
	if err := Decode(t.Payload(), &p, func(p *UnregisterPayload) int { return p.V }); err != nil {
		return err
	}
	log := Logger(ctx, w.d.Log).With(zap.String("path", p.RelPath), zap.String("object", p.Location()))
	pw := newProgressWriter(resultWriter(t), Progress{Phase: PhaseUnregistering, Path: p.RelPath, Object: p.Location()})
	what := "unregister " + p.RelPath
	if out, err := w.route(ctx, t, p.ImageRef, pw, func() (bool, string) { return w.mayUnregister(p.ImageRef) }); out != runHere {
		return err
	}

	abs := filepath.Join(p.Root, filepath.FromSlash(p.RelPath))
	if _, err := os.Stat(abs); err == nil {
		log.Info("image file is back; its image stays registered")
		w.resolved(ctx, p.ImageRef, log, TypeUnregister)
		pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, "the file is back: left registered" })
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return asJobError(what, fmt.Errorf("cannot tell whether %s is gone: %w", abs, err))
	}

	st, err := w.d.Session.Get(ctx)
	if err != nil {
		return asJobError(what, err)
	}
	release, err := w.lock.acquire(ctx, p.Location())
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer release()
	loc := location.Location{Account: st.UserUUID, Container: p.Container, Object: p.Object}
	hint := ""
	if info, err := st.Pithos.ObjectInfo(ctx, p.Container, p.Object, nil); err == nil {
		hint = info.UUID
	} else if !pithos.IsNotFound(err) {
		return asJobError(what, err)
	}
	img, err := st.Images.Find(ctx, loc, hint)
	if err != nil {
		return asJobError(what, err)
	}
	if img != nil {
		if err := st.Images.Unregister(ctx, img.ID); err != nil && !image.IsNotFound(err) {
			return asJobError(what, err)
		}
		if w.d.Redis != nil {
			pipe := w.d.Redis.Pipeline()
			_ = recordDeployWarnings(ctx, pipe, p.ImageRef, abs, "", nil)
			noteRegisteredBy(ctx, pipe, loc.String(), "")
			if _, err := pipe.Exec(ctx); err != nil {
				log.Warn("cannot clear the image's deployability warnings and registering node", zap.Error(err))
			}
		}
		log.Info("image file removed: image unregistered (its Pithos object is kept)", zap.String("image_id", img.ID))
		w.resolved(ctx, p.ImageRef, log) // whatever failed about the file is moot
		pw.update(true, func(pr *Progress) {
			pr.Phase, pr.ImageID, pr.Note = PhaseDone, img.ID, "unregistered; the object is kept"
		})
		return nil
	}
	w.resolved(ctx, p.ImageRef, log)
	pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, "was not registered" })
	return nil
}
