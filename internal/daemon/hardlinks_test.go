package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
)

func TestHardlinkWarnings(t *testing.T) {
	dir := t.TempDir()
	private, shared, owned := filepath.Join(dir, "private"), filepath.Join(dir, "shared"), filepath.Join(dir, "owned")
	for _, d := range []string{private, shared, owned} {
		require.NoError(t, os.Mkdir(d, 0o755))
	}
	// Chmod: the umask must not decide what the test sees.
	require.NoError(t, os.Chmod(private, 0o755))
	require.NoError(t, os.Chmod(shared, 0o1777))
	require.NoError(t, os.Chmod(owned, 0o775))
	roots := []config.Watch{{Dir: private}, {Dir: shared}, {Dir: owned, Owners: []string{"builder"}}, {Dir: filepath.Join(dir, "missing")}}
	sysctl := func(v string, err error) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			assert.Equal(t, protectedHardlinks, p)
			return []byte(v), err
		}
	}
	for _, tc := range []struct {
		name string
		read func(string) ([]byte, error)
		want []string // roots warned about
	}{
		{"protected", sysctl("1\n", nil), nil},
		{"unprotected: only the root others write without owners:", sysctl("0\n", nil), []string{shared}},
		{"no such sysctl (not Linux)", sysctl("", errors.New("no such file")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hardlinkWarnings(roots, tc.read)
			require.Len(t, got, len(tc.want))
			for i, root := range tc.want {
				assert.Contains(t, got[i], "watch root "+root+" ")
				assert.Contains(t, got[i], "mode 0777")
				assert.Contains(t, got[i], "fs.protected_hardlinks = 1")
			}
		})
	}
}
