package astakos

import (
	"errors"
	"fmt"

	"github.com/imagesync/imagesync/internal/rest"
)

// ErrUnauthorized matches (errors.Is) every rejection of the token: a 401
// from the identity or account service.
var ErrUnauthorized = errors.New("astakos: token rejected")

// ErrCatalog matches (errors.Is) a service catalog that cannot be used.
var ErrCatalog = errors.New("astakos: unusable service catalog")

// UnauthorizedError is a 401. It unwraps to the *rest.Error, so
// rest.IsStatus(err, 401) holds, and it is errors.Is ErrUnauthorized. Its
// message never contains the token.
type UnauthorizedError struct {
	// URL is the service that refused the token.
	URL string
	Err *rest.Error
}

func (e *UnauthorizedError) Error() string {
	reason := e.Err.Message
	if reason == "" {
		reason = "401 Unauthorized"
	}
	return fmt.Sprintf("astakos: the token was rejected by %s (%s): it is invalid or expired; get a new token from the cloud's web UI (API access) and update the configuration", e.URL, reason)
}

func (e *UnauthorizedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnauthorized) true.
func (e *UnauthorizedError) Is(target error) bool { return target == ErrUnauthorized }

// CatalogError is a service catalog that lacks a service or is ambiguous.
type CatalogError struct {
	ServiceType string
	Msg         string
}

func (e *CatalogError) Error() string {
	return fmt.Sprintf("astakos: service catalog: service type %q: %s", e.ServiceType, e.Msg)
}

// Is makes errors.Is(err, ErrCatalog) true.
func (e *CatalogError) Is(target error) bool { return target == ErrCatalog }

// classify turns a transport or status error from a call to url into the
// package's typed errors; anything else passes through.
func classify(err error, what, url string) error {
	if err == nil {
		return nil
	}
	var re *rest.Error
	if errors.As(err, &re) && re.Status == 401 {
		return &UnauthorizedError{URL: url, Err: re}
	}
	var ne *rest.NetError
	if errors.As(err, &ne) {
		return fmt.Errorf("cannot reach %s at %s: %w", what, url, err)
	}
	return err
}
