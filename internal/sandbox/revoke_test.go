package sandbox

import (
	"net/http"
	"testing"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A revoked token is refused everywhere until RestoreToken, then accepted
// again: the reliability suite revokes a token halfway through a run and
// restores it to check recovery.
func TestRevokeAndRestoreToken(t *testing.T) {
	e := newIDEnv(t, Config{})
	auth := func() int {
		return e.do(t, http.MethodPost, "/identity/v2.0/tokens", idJSONCT, `{"auth":{"token":{"id":"bob-token"}}}`).status
	}
	require.Equal(t, http.StatusOK, auth())
	e.srv.RevokeToken(idBob.Token)
	assert.Equal(t, http.StatusUnauthorized, auth())
	_, status := e.srv.users.Lookup(idBob.Token)
	assert.Equal(t, astakos.TokenRevoked, status)
	e.srv.RestoreToken(idBob.Token)
	assert.Equal(t, http.StatusOK, auth())
	_, status = e.srv.users.Lookup(idBob.Token)
	assert.Equal(t, astakos.TokenValid, status)
	e.srv.RestoreToken("never-revoked") // a no-op
}
