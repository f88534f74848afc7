package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/hibiken/asynq"

	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/rest"
)

// Class says what to do with a failed job.
type Class int

const (
	// Transient failures (network, 5xx, 429, timeouts) retry with backoff.
	Transient Class = iota
	// Permanent failures (bad metafile or metadata, 400, 403, 404, 413) are
	// archived at once with a message a person can act on.
	Permanent
	// Unauthorized (401: bad or expired token) pauses the workers: retrying
	// with the same token cannot help.
	Unauthorized
)

func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Unauthorized:
		return "unauthorized"
	default:
		return "transient"
	}
}

// PermanentError marks an error that must not be retried. It satisfies
// errors.Is(err, asynq.SkipRetry), so asynq archives the task.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string        { return e.Err.Error() }
func (e *PermanentError) Unwrap() error        { return e.Err }
func (e *PermanentError) Is(target error) bool { return target == asynq.SkipRetry }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	var p *PermanentError
	if errors.As(err, &p) {
		return err
	}
	return &PermanentError{Err: err}
}

// permanentKind is implemented by errors of other packages that know they
// are permanent (validation, metafile and quota errors).
type permanentKind interface{ Permanent() bool }

// Classify maps an error to its class.
func Classify(err error) Class {
	if err == nil {
		return Transient
	}
	var p *PermanentError
	if errors.As(err, &p) {
		return Permanent
	}
	var rerr *rest.Error
	if errors.As(err, &rerr) {
		switch {
		case rerr.Status == http.StatusUnauthorized:
			return Unauthorized
		case rerr.Temporary():
			return Transient
		case rerr.Status == http.StatusPreconditionFailed, rerr.Status == http.StatusConflict:
			// The object changed under us between two requests: re-running
			// recomputes everything.
			return Transient
		case rerr.Status >= 400 && rerr.Status < 500:
			return Permanent
		}
	}
	var ne *rest.NetError
	if errors.As(err, &ne) {
		return Transient
	}
	var pk permanentKind
	if (errors.As(err, &pk) && pk.Permanent()) || isMetadataError(err) {
		return Permanent
	}
	if errors.Is(err, location.ErrInvalid) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return Permanent
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Transient
	}
	return Transient
}

// hint is the "what to do" part of an archived job's message.
func hint(err error) string {
	var (
		rerr *rest.Error
		qerr *pithos.QuotaError
		perr *PolicyError
	)
	switch {
	case errors.As(err, &perr):
		return "then run `syncctl retry`; an edited metafile is picked up by itself"
	case errors.As(err, &qerr):
		// Its message already says how much is needed and is free.
		return "run `syncctl retry` once there is room"
	case errors.Is(err, fs.ErrNotExist):
		return "the file is gone; nothing to do unless it comes back"
	case errors.Is(err, fs.ErrPermission):
		return "make the file readable by syncd, then run `syncctl retry`"
	case errors.As(err, &rerr) && rerr.Status == http.StatusRequestEntityTooLarge:
		return "the storage quota is full: free space or raise the quota, then run `syncctl retry`"
	case errors.As(err, &rerr) && rerr.Status == http.StatusForbidden:
		return "the token's user may not write there: check the container and the account, then run `syncctl retry`"
	case errors.As(err, &rerr) && rerr.Status == http.StatusNotFound:
		return "the remote object or container does not exist: check the watch entry's container, then run `syncctl resync`"
	}
	var derr *DeployError
	if errors.As(err, &derr) {
		return "set the values named above; a metafile change is picked up automatically"
	}
	if isMetadataError(err) {
		return "fix the metafile or template named above; the change is picked up automatically"
	}
	return "fix the cause, then run `syncctl retry`"
}

// isMetadataError reports a problem in the metadata a person wrote: a
// metafile that does not parse, an unknown placeholder, a value Plankton
// would refuse.
func isMetadataError(err error) bool {
	var (
		me *image.MetafileError
		pe *image.PlaceholderError
		ve *image.ValidationError
	)
	return errors.As(err, &me) || errors.As(err, &pe) || errors.As(err, &ve)
}

// asJobError turns a handler failure into what asynq should see: permanent
// ones archived with an actionable message, others returned for retry.
func asJobError(what string, err error) error {
	if err == nil {
		return nil
	}
	switch Classify(err) {
	case Permanent:
		return permanent(fmt.Errorf("%s: %w (%s)", what, err, hint(err)))
	case Unauthorized:
		return &UnauthorizedError{Err: fmt.Errorf("%s: %w", what, err)}
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// UnauthorizedError is returned by handlers when the cloud rejected the token.
type UnauthorizedError struct{ Err error }

func (e *UnauthorizedError) Error() string {
	return unauthorizedPrefix + ": write a valid one to cloud.token_file (read again without a restart), or set cloud.token / SYNCD_TOKEN and restart syncd: " + e.Err.Error()
}
func (e *UnauthorizedError) Unwrap() error { return e.Err }
