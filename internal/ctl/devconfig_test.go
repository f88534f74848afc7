package ctl

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
)

// Beside a `syncd --dev`, syncctl needs no configuration: it reads the one
// the dev daemon left in ./state, unless configs/syncd.yaml exists.
func TestDefaultConfigPathFallsBackToTheDevDaemons(t *testing.T) {
	t.Chdir(t.TempDir())
	assert.Equal(t, config.DefaultPath, defaultConfigPath(config.DefaultPath), "nothing there: the default")

	dev := filepath.Join("state", config.DevConfigFile)
	require.NoError(t, os.MkdirAll("state", 0o700))
	require.NoError(t, os.WriteFile(dev, []byte("node: n1\n"), 0o600))
	assert.Equal(t, dev, defaultConfigPath(config.DefaultPath))

	require.NoError(t, os.MkdirAll("configs", 0o755))
	require.NoError(t, os.WriteFile(config.DefaultPath, []byte("node: n2\n"), 0o600))
	assert.Equal(t, config.DefaultPath, defaultConfigPath(config.DefaultPath), "a real configuration wins")
}
