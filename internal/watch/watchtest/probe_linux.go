// Package watchtest holds what tests of the drop folder's rules share.
package watchtest

import (
	"errors"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// OpenProbe reports whether anything opened or read path since the probe
// was set: inotify's IN_OPEN and IN_ACCESS see every open, including one
// that fails no check of ours.
func OpenProbe(t *testing.T, path string) func() bool {
	t.Helper()
	return Probe(t, path, syscall.IN_OPEN|syscall.IN_ACCESS)
}

// Probe reports whether inotify saw any of the events in mask on path since
// the probe was set (IN_ACCESS alone: whether it was read).
func Probe(t *testing.T, path string, mask uint32) func() bool {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	_, err = syscall.InotifyAddWatch(fd, path, mask)
	require.NoError(t, err)
	return func() bool {
		buf := make([]byte, 4096)
		n, err := syscall.Read(fd, buf)
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("inotify read: %v", err)
		}
		return n > 0
	}
}
