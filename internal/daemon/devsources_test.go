package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
)

// With configs/syncd.yaml present, `syncd --dev` takes its node and watch
// roots but not its cloud or token, and says so, and tells syncctl's users
// which configuration syncctl will read.
func TestDevModeSaysWhatItTookFromWhere(t *testing.T) {
	t.Chdir(t.TempDir())
	require.NoError(t, os.MkdirAll("configs", 0o755))
	require.NoError(t, os.WriteFile(config.DefaultPath, []byte(`node: build-host-1
cloud:
  auth_url: https://accounts.example.org/identity/v2.0
  token_file: /etc/imagesync/token
watch:
  - dir: ./images
    container: images
`), 0o600))
	base, err := LoadConfig(MainOptions{ConfigPath: config.DefaultPath, Dev: true, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	got := devSources(base, config.DefaultPath, "./state")
	for _, want := range []string{
		"config        configs/syncd.yaml (node, watch roots, settle, upload; not its cloud, token or redis)",
		"node          build-host-1  (from configs/syncd.yaml line 1)",
		"watch roots   1, from configs/syncd.yaml line 5",
		"token         the sandbox user's, kept in state/dev-token; cloud.token_file /etc/imagesync/token (configs/syncd.yaml line 4) is not used",
		"syncctl       reads configs/syncd.yaml before this run's state/dev-syncd.yaml: use  syncctl --config state/dev-syncd.yaml",
	} {
		assert.Contains(t, got, want)
	}

	// From the environment, and with no file at all.
	require.NoError(t, os.Remove(config.DefaultPath))
	base, err = LoadConfig(MainOptions{ConfigPath: config.DefaultPath, Dev: true, Getenv: func(k string) string {
		return map[string]string{"SYNCD_NODE": "envnode"}[k]
	}})
	require.NoError(t, err)
	got = devSources(base, config.DefaultPath, filepath.Join(".", "state"))
	assert.Contains(t, got, "config        none (configs/syncd.yaml does not exist): built-in defaults")
	assert.Contains(t, got, "node          envnode  (from SYNCD_NODE)")
	assert.Contains(t, got, "watch roots   ./images (dev mode's default)")
	assert.NotContains(t, got, "syncctl       reads")
}
