package watch

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUnreadable needs permissions to bite, which they do not for root: as
// root it re-runs itself as nobody, so the real chmod path is tested either
// way.
func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		runAsNobody(t, "TestUnreadable")
		return
	}
	t.Parallel()
	t.Logf("running as uid %d", os.Geteuid())
	dir := t.TempDir()
	write(t, filepath.Join(dir, "good.diskdump"), "good")
	write(t, filepath.Join(dir, "bad.diskdump"), "bad")
	write(t, filepath.Join(dir, "locked", "in.diskdump"), "in")
	require.NoError(t, os.Chmod(filepath.Join(dir, "bad.diskdump"), 0))
	require.NoError(t, os.Chmod(filepath.Join(dir, "locked"), 0))
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dir, "locked"), 0o755) }) // so TempDir can be removed

	h := start(t, opts(t, dir))
	evs := h.waitFor("good and two errors", func(evs []stamped) bool {
		return hasReady("good.diskdump")(evs) && len(only[Error](evs)) == 2
	})
	errs := map[string]Error{}
	for _, e := range only[Error](evs) {
		errs[e.RelPath] = e
	}
	require.Contains(t, errs, "bad.diskdump")
	require.Contains(t, errs, "locked")
	assert.ErrorIs(t, errs["bad.diskdump"], os.ErrPermission)
	assert.ErrorIs(t, errs["locked"], os.ErrPermission)
	assert.Equal(t, filepath.Join(dir, "bad.diskdump"), errs["bad.diskdump"].Path)
	assert.Contains(t, errs["bad.diskdump"].Error(), "permission denied")
	assert.Contains(t, errs["bad.diskdump"].Error(), "bad.diskdump")
	assert.Empty(t, readyFor(evs, "bad.diskdump"))

	// The watcher keeps going, and does not repeat itself on rescans.
	write(t, filepath.Join(dir, "later.diskdump"), "later")
	h.waitFor("later", hasReady("later.diskdump"))
	evs = h.rescan(false)
	assert.Len(t, only[Error](evs), 2)

	// Fixed permissions: the file on its chmod event, the directory on the
	// next rescan.
	require.NoError(t, os.Chmod(filepath.Join(dir, "bad.diskdump"), 0o644))
	evs = h.waitFor("bad fixed", hasReady("bad.diskdump"))
	assert.Equal(t, int64(3), readyFor(evs, "bad.diskdump")[0].Size)
	require.NoError(t, os.Chmod(filepath.Join(dir, "locked"), 0o755))
	h.rescan(false)
	h.waitFor("locked fixed", hasReady("locked/in.diskdump"))
	// And the directory is watched now.
	write(t, filepath.Join(dir, "locked", "new.diskdump"), "new")
	evs = h.waitFor("new in unlocked", hasReady("locked/new.diskdump"))
	assert.Len(t, only[Error](evs), 2)
	assert.Empty(t, only[ImageRemoved](evs), "unreadable is not removed")
}

// runAsNobody runs one test of this binary as uid/gid 65534 and fails if it
// does not pass.
func runAsNobody(t *testing.T, test string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		require.NoError(t, os.Chmod(d, 0o755))
	}
	bin := filepath.Join(dir, "watch.test")
	copyFile(t, exe, bin)

	ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+os.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s as nobody:\n%s", test, out)
	assert.Contains(t, string(out), "running as uid "+strconv.Itoa(65534))
	assert.Contains(t, string(out), "--- PASS: "+test)
	if t.Failed() {
		t.Logf("child output:\n%s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}
