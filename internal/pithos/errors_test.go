package pithos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

func TestErrorHelpers(t *testing.T) {
	wrap := func(status int) error {
		return fmt.Errorf("doing things: %w", &rest.Error{Method: "GET", URL: "u", Status: status})
	}
	helpers := map[string]func(error) bool{
		"IsNotFound": IsNotFound, "IsForbidden": IsForbidden, "IsUnauthorized": IsUnauthorized,
		"IsConflict": IsConflict, "IsPreconditionFailed": IsPreconditionFailed, "IsQuota": IsQuota,
	}
	statusOf := map[string]int{
		"IsNotFound": 404, "IsForbidden": 403, "IsUnauthorized": 401,
		"IsConflict": 409, "IsPreconditionFailed": 412, "IsQuota": 413,
	}
	for name, fn := range helpers {
		for _, status := range []int{401, 403, 404, 409, 412, 413, 500} {
			assert.Equal(t, status == statusOf[name], fn(wrap(status)), "%s(%d)", name, status)
		}
		assert.False(t, fn(nil), name)
		assert.False(t, fn(errors.New("plain")), name)
		assert.False(t, fn(&rest.NetError{Method: "GET", URL: "u", Err: errors.New("refused")}), name)
	}
	// The upload engine's pre-check counts as a quota error too.
	assert.True(t, IsQuota(fmt.Errorf("upload: %w", &QuotaError{Object: "o", Needed: 10, Free: 1})))
}

func TestErrorsFromServer(t *testing.T) {
	cloud, c := startCloudClient(t, sandbox.Config{})
	ctx := context.Background()
	bad := New(cloud.PithosURL(), sandboxtest.Alice.UUID, "wrong-token", &http.Client{})
	_, err := bad.ContainerInfo(ctx, "c")
	assert.True(t, IsUnauthorized(err), "%v", err)
	assert.NotContains(t, err.Error(), "wrong-token")

	mustCreate(t, c, "c", nil)
	mustPut(t, c, "c", "o", []byte("x"), nil)
	require.True(t, IsConflict(c.DeleteContainer(ctx, "c")))

	bob := clientAs(cloud, sandboxtest.Bob, nil).ForAccount(sandboxtest.Alice.UUID)
	_, err = bob.ObjectInfo(ctx, "c", "o", nil)
	assert.True(t, IsForbidden(err), "%v", err)
	// A GET carries the fault body (a HEAD cannot).
	_, _, err = bob.GetObject(ctx, "c", "o", nil)
	var re *rest.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusForbidden, re.Status)
	assert.Equal(t, "forbidden", re.Fault)
}
