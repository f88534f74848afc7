package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/inspect"
	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/pithos"
)

// handleRegister makes the image's registration equal to the metadata its
// metafiles describe now, uploads <object>.meta beside it and queues the
// publish that must follow every registration.
func (w *Worker) handleRegister(ctx context.Context, t *asynq.Task) error {
	var p RegisterPayload
	if err := Decode(t.Payload(), &p, func(p *RegisterPayload) int { return p.V }); err != nil {
		return err
	}
	taskID, _ := asynq.GetTaskID(ctx)
	log := Logger(ctx, w.d.Log).With(zap.String("path", p.RelPath), zap.String("object", p.Location()))
	pw := newProgressWriter(resultWriter(t), Progress{Phase: PhaseRegistering, Path: p.RelPath, Object: p.Location()})
	what := "register " + p.RelPath
	if out, err := w.route(ctx, t, p.ImageRef, pw, func() (bool, string) { return w.hasFile(p) }); out != runHere {
		return err
	}

	mtime, err := fileMtime(p.File)
	if err != nil {
		return permanent(fmt.Errorf("%s: %w", what, err))
	}
	abs := filepath.Join(p.Root, filepath.FromSlash(p.RelPath))
	disk, err := w.inspectDisk(ctx, p)
	switch {
	case errors.Is(err, errImageGone):
		// Nothing to register, and whatever failed about the file is moot.
		log.Info("the image file is gone: nothing to register")
		w.resolved(ctx, p.ImageRef, log)
		if err := recordDeployWarnings(ctx, w.d.Redis, p.ImageRef, abs, taskID, nil); err != nil {
			log.Warn("cannot clear the image's deployability warnings", zap.Error(err))
		}
		pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, "the image file is gone: nothing to register" })
		return nil
	case errors.Is(err, errImageChanged):
		// The new content's upload registers it, with its own detection.
		const note = "superseded: the file changed after this registration was queued; its new content is registered after its upload"
		log.Info(note)
		pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, note })
		return nil
	case err != nil:
		return asJobError(what, err)
	}
	resolved, err := DesiredMetadata(w.d.Catalog, p.ImageRef, mtime, disk)
	if err == nil {
		err = resolved.Validate()
	}
	if err != nil {
		return asJobError(what, permanent(err))
	}
	for _, warn := range resolved.Warnings {
		log.Warn("metafile warning", zap.String("warning", warn.String()))
	}
	deployWarnings, err := w.checkDeployable(p.ImageRef, abs, resolved, disk)
	if err != nil {
		return asJobError(what, err)
	}
	desired := resolved.Metadata

	st, err := w.d.Session.Get(ctx)
	if err != nil {
		return asJobError(what, err)
	}
	checksum, imageID := p.ObjectHash, p.ObjectUUID
	if checksum == "" {
		// A metafile edit or a sweep: register what is stored, if anything.
		info, err := st.Pithos.ObjectInfo(ctx, p.Container, p.Object, nil)
		if pithos.IsNotFound(err) {
			log.Info("image not uploaded yet; its upload registers it")
			pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, "not uploaded yet: the upload registers it" })
			return nil
		}
		if err != nil {
			return asJobError(what, err)
		}
		checksum, imageID = info.Hash, info.UUID
	}

	loc := location.Location{Account: st.UserUUID, Container: p.Container, Object: p.Object}
	release, err := w.lock.acquire(ctx, p.Location())
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer release()
	img, rec, err := st.Images.Reconcile(ctx, image.ReconcileRequest{Location: loc, Desired: desired, ImageID: imageID, Checksum: checksum})
	if errors.Is(err, image.ErrChecksumMismatch) {
		// The object was overwritten after this registration was queued:
		// the newer upload registers the newer content.
		log.Info("object changed since this registration was queued; the newer upload registers it", zap.Error(err))
		pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, "superseded: the object changed" })
		return nil
	}
	if err != nil {
		return asJobError(what, err)
	}
	changes := rec.Strings()
	if len(changes) > 0 {
		log.Info("image registered", zap.String("image_id", img.ID), zap.Bool("posted", rec.Registered),
			zap.Bool("was_registered", rec.WasRegistered), zap.Strings("changes", changes))
	} else {
		log.Info("image already registered as described", zap.String("image_id", img.ID))
	}

	root, err := w.d.Catalog.Root(p.Root)
	if err != nil {
		return err
	}
	if root.UploadsMetafile() {
		if err := w.uploadMetafile(ctx, st, p.ImageRef, img, !rec.Registered, log); err != nil {
			return asJobError(what+": uploading its .meta", err)
		}
	}

	for _, dw := range deployWarnings {
		log.Warn("registered, but snf-image cannot deploy it as it is", zap.String("warning", dw))
	}
	if w.d.Redis != nil {
		// Both are for syncctl, and go in one round trip; the registration
		// is done either way.
		node := ""
		if !root.Shared {
			node = w.d.Catalog.Node()
		}
		pipe := w.d.Redis.Pipeline()
		err := recordDeployWarnings(ctx, pipe, p.ImageRef, abs, taskID, deployWarnings)
		noteRegisteredBy(ctx, pipe, loc.String(), node)
		if _, perr := pipe.Exec(ctx); err == nil {
			err = perr
		}
		if err != nil {
			log.Warn("cannot record the deployability warnings and the registering node for syncctl", zap.Error(err))
		}
	}

	// Every POST resets the read permissions, so each registration gets its
	// own publish: the image's update time names it. A forced registration
	// (sweep, resync) publishes again even when nothing else changed.
	pub := PublishRequest(p.ImageRef, img.ID, desired.IsPublic, desired.Members, taskID+"@"+img.UpdatedAt)
	pub.Replace = p.Force
	out, err := w.d.Enqueuer.Enqueue(ctx, pub)
	if err != nil {
		return fmt.Errorf("%s: queue its publish: %w", what, err)
	}
	log.Info("publish queued", zap.String("task", pub.ID), zap.String("outcome", string(out)))
	w.resolved(ctx, p.ImageRef, log, TypeRegister)
	pw.update(true, func(pr *Progress) {
		pr.Phase, pr.ImageID, pr.ObjectHash, pr.Changes = PhaseDone, img.ID, img.Checksum, changes
		pr.Warnings = deployWarnings
		pr.Note = "publish " + pub.ID + " " + string(out)
	})
	return nil
}

// inspectDisk detects (or recalls) what the image file holds, reading it
// through the root's rules, if it is still the content the task was made
// for (else errImageGone or errImageChanged).
func (w *Worker) inspectDisk(ctx context.Context, p RegisterPayload) (*inspect.Report, error) {
	facts, err := factsOfFingerprint(p.ImageRef, p.File)
	if err != nil {
		return nil, permanent(err)
	}
	return w.d.Catalog.InspectImage(ctx, w.d.Detector, facts)
}

// checkDeployable refuses a diskdump whose OSFAMILY or ROOT_PARTITION
// contradicts its disk, and, under require_deployable, one snf-image could
// not deploy as it is; otherwise it returns the warnings to show.
func (w *Worker) checkDeployable(ref ImageRef, abs string, r *image.Resolved, disk *inspect.Report) ([]string, error) {
	errs, warns := w.d.Catalog.DeployCheck(ref, abs, r, disk)
	if len(errs) > 0 {
		return nil, permanent(&DeployError{Problems: errs})
	}
	return warns, nil
}

// uploadMetafile stores the registered image, in kamaki's .meta format,
// beside the object; an identical one is left alone so that re-running a
// registration writes nothing. Only an image that was not registered just
// now can have an identical one: a registration moves its updated-at.
func (w *Worker) uploadMetafile(ctx context.Context, st *cloud.State, ref ImageRef, img *image.Image, mayBeStored bool, log *zap.Logger) error {
	body, err := image.RenderMetafile(img, st.UserName)
	if err != nil {
		return err
	}
	name := ref.Object + image.MetafileSuffix
	if mayBeStored {
		rc, _, err := st.Pithos.GetObject(ctx, ref.Container, name, nil)
		switch {
		case err == nil:
			cur, rerr := io.ReadAll(io.LimitReader(rc, int64(len(body)+1)))
			rc.Close()
			if rerr == nil && string(cur) == string(body) {
				return nil
			}
		case !pithos.IsNotFound(err):
			return err
		}
	}
	if _, err := st.Pithos.PutObject(ctx, ref.Container, name, body, &pithos.PutOptions{ContentType: "application/json"}); err != nil {
		return err
	}
	log.Info("metafile uploaded", zap.String("metafile", "/"+ref.Container+"/"+name))
	return nil
}

// fileMtime reads the mtime back out of a file fingerprint
// ("size:mtime_ns:dev:inode", see fileFingerprint).
func fileMtime(fp string) (time.Time, error) {
	parts := strings.Split(fp, ":")
	if len(parts) != 4 {
		return time.Time{}, fmt.Errorf("malformed file fingerprint %q", fp)
	}
	ns, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("malformed file fingerprint %q: %w", fp, err)
	}
	return time.Unix(0, ns), nil
}
