package pithos

import (
	"errors"
	"net/http"

	"github.com/imagesync/imagesync/internal/rest"
)

// These helpers let callers branch on what the server said without
// unpacking *rest.Error themselves. They see through %w wrapping.

// IsNotFound: a missing account, container, object or version (404).
func IsNotFound(err error) bool { return rest.IsStatus(err, http.StatusNotFound) }

// IsForbidden: no permission on another account's resource (403). Pithos
// answers 403, not 404, for an object the caller may not read.
func IsForbidden(err error) bool { return rest.IsStatus(err, http.StatusForbidden) }

// IsUnauthorized: the token is missing, invalid or expired (401).
func IsUnauthorized(err error) bool { return rest.IsStatus(err, http.StatusUnauthorized) }

// IsConflict: e.g. deleting a non-empty container (409).
func IsConflict(err error) bool { return rest.IsStatus(err, http.StatusConflict) }

// IsPreconditionFailed: an If-Match / If-None-Match condition did not hold (412).
func IsPreconditionFailed(err error) bool {
	return rest.IsStatus(err, http.StatusPreconditionFailed)
}

// IsQuota: the container or account quota is exhausted. The server says so
// with a 413; the upload engine's pre-check says so with a *QuotaError.
func IsQuota(err error) bool {
	var qe *QuotaError
	return errors.As(err, &qe) || rest.IsStatus(err, http.StatusRequestEntityTooLarge)
}
