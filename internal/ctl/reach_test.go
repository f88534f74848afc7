package ctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/redistest"
)

// writeDevConfig leaves, in the current directory, what `syncd --dev`
// leaves for syncctl, pointing at ports where nothing listens (the dev
// daemon is not running).
func writeDevConfig(t *testing.T) (redisPort, cloudPort int) {
	t.Helper()
	redisPort, cloudPort = redistest.FreePort(t), redistest.FreePort(t)
	require.NoError(t, os.MkdirAll("state", 0o700))
	require.NoError(t, os.MkdirAll("images", 0o755))
	require.NoError(t, os.WriteFile(filepath.Join("state", "dev-token"), []byte("dev-token-1234\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join("state", config.DevConfigFile), fmt.Appendf(nil, `node: devnode
state_dir: ./state
cloud: {auth_url: "http://127.0.0.1:%d/identity/v2.0", token_file: state/dev-token}
redis: {addr: embedded, embedded_listen: "127.0.0.1:%d"}
watch: [{dir: ./images, container: images}]
`, cloudPort, redisPort), 0o600))
	return redisPort, cloudPort
}

// With nothing running, syncctl fails at once and says why: what it could
// not reach, what to check, and which configuration it read. (Before, the
// cloud commands retried for 15-18 s and said "sweep: …", and the Redis
// ones took 1.7 s against a refused port.)
func TestFailsFastAndSaysWhy(t *testing.T) {
	t.Chdir(t.TempDir())
	redisPort, cloudPort := writeDevConfig(t)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"status"}, []string{
			fmt.Sprintf("syncctl: cannot reach syncd's embedded Redis at 127.0.0.1:%d: connect: connection refused", redisPort),
			"syncctl: is `syncd --dev` running here?",
			"syncctl: configuration: state/dev-syncd.yaml",
		}},
		{[]string{"list", "failed"}, []string{"is `syncd --dev` running here?"}},
		{[]string{"images"}, []string{
			fmt.Sprintf("syncctl: cannot reach identity service at http://127.0.0.1:%d/identity/v2.0", cloudPort),
			"syncctl: is `syncd --dev` running here? (its sandbox cloud serves cloud.auth_url",
			"syncctl: configuration: state/dev-syncd.yaml",
		}},
		{[]string{"republish", "--dry-run"}, []string{"is `syncd --dev` running here?"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			start := time.Now()
			code, out, errOut := runCtl(t, tt.args...)
			took := time.Since(start)
			assert.Equal(t, 1, code)
			assert.Empty(t, out)
			for _, w := range tt.want {
				assert.Contains(t, errOut, w)
			}
			assert.NotContains(t, errOut, "sweep:")
			// Generous for a loaded machine; the point is seconds, not 15.
			assert.Less(t, took, 5*time.Second, "a refused port fails fast")
			t.Logf("%v: %v", tt.args, took)
		})
	}
}

// With no configuration at all, syncctl says it found none and where it
// looked.
func TestSaysWhenNoConfigurationWasFound(t *testing.T) {
	t.Chdir(t.TempDir())
	code, _, errOut := runCtl(t, "images")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no configuration file (looked for configs/syncd.yaml and state/dev-syncd.yaml)")
}

// When configs/syncd.yaml exists beside a dev daemon's configuration, the
// first one wins, and syncctl says there is another.
func TestSaysWhichConfigurationWhenThereAreTwo(t *testing.T) {
	t.Chdir(t.TempDir())
	writeDevConfig(t)
	require.NoError(t, os.MkdirAll("configs", 0o755))
	require.NoError(t, os.WriteFile(config.DefaultPath, fmt.Appendf(nil, "node: n2\nredis: {embedded_listen: \"127.0.0.1:%d\"}\n", redistest.FreePort(t)), 0o600))
	code, _, errOut := runCtl(t, "status")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "syncctl: reading configs/syncd.yaml; a `syncd --dev` run here left state/dev-syncd.yaml (pass --config state/dev-syncd.yaml to use that one)")
	assert.Contains(t, errOut, "syncctl: configuration: configs/syncd.yaml")
}

func TestUnknownQueueIsAUsageError(t *testing.T) {
	e := newEnv(t, "miniredis")
	for _, args := range [][]string{{"list", "pending", "--queue", "uplaod"}, {"inspect", "x", "--queue", "uplaod"}, {"retry", "--all", "--queue", "uplaod"}} {
		code, _, errOut := e.run(args...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
		assert.Contains(t, errOut, `unknown queue "uplaod" (known: default, node:n1, upload, upload:n1)`, "%v", args)
	}
	code, _, errOut := e.run("list", "pending", "--queue", "upload:n1")
	assert.Equal(t, 0, code, errOut)
}
