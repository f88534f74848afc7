package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/rest"
)

// ReconcileRequest names an image file in Pithos and the metadata its
// registration should have.
type ReconcileRequest struct {
	// Location of the image file, with its account (the owner's uuid).
	Location location.Location
	// Desired is validated (Validate) before any request. Members are not
	// handled here: Publish applies them after the registration.
	Desired Metadata
	// ImageID is optional: the Pithos object's UUID (X-Object-UUID), which
	// is the image id. With it the registered image is read with one HEAD;
	// without it, by listing the owner's images.
	ImageID string
	// Checksum is optional: the Merkle hash of the uploaded file. The
	// server's copy must have it, or nothing is written
	// (ErrChecksumMismatch).
	Checksum string
}

// Reconciled says what Reconcile found and did.
type Reconciled struct {
	// Changes is how the registration differed from the desired metadata
	// before Reconcile ran (every field, when the file was not registered).
	// Empty means nothing was written.
	Changes
	// WasRegistered is true when the file was already an image.
	WasRegistered bool
	// Registered is true when Reconcile sent POST /images/. That resets the
	// image's read permissions to the owner (plus everybody when public),
	// dropping its members: Publish must run afterwards.
	Registered bool
}

// ErrChecksumMismatch is wrapped when the file on the server is not the one
// whose checksum the caller gave: it was overwritten, or its upload did not
// finish. Retrying without re-uploading cannot help.
var ErrChecksumMismatch = errors.New("the image file on the server is not the uploaded one")

// MetafileLocation is where kamaki and imagesync keep an image's metafile:
// beside the image file, with ".meta" appended. kamaki refuses to register
// when one already exists unless forced; callers check it with a Pithos HEAD.
func MetafileLocation(loc location.Location) location.Location {
	loc.Object += MetafileSuffix
	return loc
}

// ParseLocation parses the image's location (kept percent-encoded, as the
// server sends it).
func (img *Image) ParseLocation() (location.Location, error) {
	return location.Parse(img.Location)
}

// Reconcile makes the registration of the file at req.Location match
// req.Desired exactly, and returns the image as it then is.
//
// When the file is not registered, or its registration differs in any way,
// it is (re-)registered with POST /images/. A registration merges metadata
// server-side, so properties that are no longer desired are removed with an
// update that sends them empty: a re-registration is an override, not a
// merge. Those removals are sent before the POST, so that the merge can never
// push the image over Plankton's limit of metadata items.
//
// When the registration already matches, only reads are sent: Reconcile is
// idempotent.
func (c *Client) Reconcile(ctx context.Context, req ReconcileRequest) (*Image, Reconciled, error) {
	loc := req.Location
	op := fmt.Sprintf("reconcile image %s", loc.String())
	if err := Validate(&req.Desired); err != nil {
		return nil, Reconciled{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := loc.Validate(); err != nil {
		return nil, Reconciled{}, fmt.Errorf("%s: %w", op, err)
	}
	if loc.Account == "" {
		return nil, Reconciled{}, fmt.Errorf("%s: location %s has no account (user uuid)", op, loc.Short())
	}
	desired := req.Desired

	current, err := c.Find(ctx, loc, req.ImageID)
	if err != nil {
		return nil, Reconciled{}, fmt.Errorf("%s: %w", op, err)
	}
	out := Reconciled{Changes: Diff(desired, current), WasRegistered: current != nil}
	if current != nil && req.Checksum != "" && current.Checksum != req.Checksum {
		return nil, out, fmt.Errorf("%s: %w: its hash is %s, the uploaded file's is %s (re-upload it)",
			op, ErrChecksumMismatch, current.Checksum, req.Checksum)
	}
	if out.Empty() {
		return current, out, nil
	}

	if current != nil {
		if del := out.DeleteProperties(); len(del) > 0 {
			if _, err := c.Update(ctx, current.ID, UpdateParams{DeleteProperties: del}); err != nil {
				return nil, out, fmt.Errorf("%s: removing properties no longer wanted: %w", op, err)
			}
		}
	}
	img, err := c.Register(ctx, desired.Name, loc, RegisterParams{
		DiskFormat:      desired.DiskFormat,
		ContainerFormat: desired.ContainerFormat,
		IsPublic:        desired.IsPublic,
		Checksum:        req.Checksum,
		Properties:      desired.Properties,
	})
	if err != nil {
		return nil, out, fmt.Errorf("%s: %w", op, err)
	}
	out.Registered = true

	// Whatever the merge kept (a property added by somebody else since we
	// looked) goes now.
	if remaining := Diff(desired, img); !remaining.Empty() {
		img, err = c.Update(ctx, img.ID, updateFor(remaining))
		if err != nil {
			return nil, out, fmt.Errorf("%s: after registering: %w", op, err)
		}
		if left := Diff(desired, img); !left.Empty() {
			return img, out, fmt.Errorf("%s: the server did not apply: %v", op, left.Strings())
		}
	}
	return img, out, nil
}

// updateFor turns a diff into the PUT that applies it.
func updateFor(ch Changes) UpdateParams {
	var p UpdateParams
	if ch.Name != nil {
		p.Name = &ch.Name.To
	}
	if ch.DiskFormat != nil {
		p.DiskFormat = &ch.DiskFormat.To
	}
	if ch.ContainerFormat != nil {
		p.ContainerFormat = &ch.ContainerFormat.To
	}
	if ch.IsPublic != nil {
		p.IsPublic = &ch.IsPublic.To
	}
	if set := ch.SetProperties(); len(set) > 0 {
		p.SetProperties = set
	}
	p.DeleteProperties = ch.DeleteProperties()
	return p
}

// Find returns the image registered at loc, or nil when there is none. A
// hint (the object's UUID, which is the image id) is tried first; if it
// names no image the location is not registered, and if it is empty, names
// an image elsewhere, or cannot be an id, the owner's images are searched.
func (c *Client) Find(ctx context.Context, loc location.Location, hint string) (*Image, error) {
	if hint != "" {
		img, err := c.Get(ctx, hint)
		switch {
		case err == nil:
			if sameLocation(img, loc) {
				return img, nil
			}
		case IsNotFound(err):
			return nil, nil
		case rest.IsStatus(err, http.StatusBadRequest):
			// Not a uuid: search instead.
		default:
			return nil, err
		}
	}
	imgs, err := c.ListDetail(ctx, ListOptions{Owner: loc.Account})
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		if sameLocation(img, loc) {
			return img, nil
		}
	}
	return nil, nil
}

func sameLocation(img *Image, loc location.Location) bool {
	l, err := img.ParseLocation()
	return err == nil && l == loc
}
