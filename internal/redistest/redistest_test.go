package redistest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartKillRestart(t *testing.T) {
	t.Setenv(EnvRedis, "")
	s := Start(t)
	require.NotEqual(t, 6379, s.Port(), "a test's Redis is never the default port")
	c := s.Client(t)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	s.Kill()
	assert.Error(t, c.Ping(ctx).Err(), "killed")

	s.Restart()
	require.NoError(t, c.Ping(ctx).Err(), "restarted on the same port")
	n, err := c.Exists(ctx, "k").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "nothing is persisted across a restart")
}

func TestEachTestHasItsOwn(t *testing.T) {
	t.Setenv(EnvRedis, "")
	a, b := Start(t), Start(t)
	assert.NotEqual(t, a.Addr, b.Addr)
}
