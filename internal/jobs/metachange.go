package jobs

import (
	"context"
	"fmt"
)

// MetaFollowUp is what FollowMetafiles queued for one image.
type MetaFollowUp struct {
	// Request is the task it enqueued or found: the image's upload, or a
	// registration.
	Request Request
	Outcome Outcome
}

// Registers reports whether a registration was newly queued: only then did
// the metafiles really change since the image was last registered.
func (m MetaFollowUp) Registers() bool {
	return m.Request.Type == TypeRegister && m.Outcome == Enqueued
}

// FollowMetafiles makes image f's registration follow its metafiles as they
// are now, after one of them changed or was found (every metafile is "found"
// when syncd starts). It queues as little as it can:
//
//   - while the image's upload is queued or running, nothing: the
//     registration the upload queues when it is done reads the metafiles
//     then;
//   - when the upload is unknown (never queued, or forgotten by a restarted
//     Redis), the upload, for the same reason; an upload of a file that is
//     stored already writes nothing;
//   - when the upload completed, the registration of what it uploaded. Its
//     id is the one the upload's own registration got if the metafiles did
//     not change since, so an unchanged metafile queues nothing new;
//   - when the upload failed, a registration of what is stored now, as
//     before the failed upload.
func FollowMetafiles(ctx context.Context, e *Enqueuer, c *Catalog, f FileFacts) (MetaFollowUp, error) {
	up, err := c.UploadRequest(f, false)
	if err != nil {
		return MetaFollowUp{}, err
	}
	out, err := e.Enqueue(ctx, up)
	if err != nil {
		return MetaFollowUp{}, err
	}
	if out == Enqueued || out == Queued {
		return MetaFollowUp{Request: up, Outcome: out}, nil
	}
	hash := ""
	if out == Done {
		hash = e.uploadedHash(up)
	}
	reg, err := c.RegisterRequest(f, hash, "", "metafile", false)
	if err != nil {
		return MetaFollowUp{}, err
	}
	out, err = e.Enqueue(ctx, reg)
	if err != nil {
		return MetaFollowUp{}, fmt.Errorf("queue the registration of %s: %w", f.RelPath, err)
	}
	return MetaFollowUp{Request: reg, Outcome: out}, nil
}

// uploadedHash is the Merkle hash a completed upload task reported, or ""
// (then the registration reads what is stored).
func (e *Enqueuer) uploadedHash(up Request) string {
	ti, err := e.insp.GetTaskInfo(up.Queue, up.ID)
	if err != nil {
		return ""
	}
	p, ok := DecodeProgress(ti.Result)
	if !ok {
		return ""
	}
	return p.ObjectHash
}
