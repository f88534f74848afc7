//go:build linux

package pithos

import (
	"os"
	"strconv"
)

// reopenFile opens f's inode again, read-only, as a new open file
// description with its own offset. Going through /proc/self/fd (not f's
// name) gets the very file f is, even if it was renamed or replaced since.
func reopenFile(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	// Opened inside Control, which keeps f's descriptor from being closed
	// (and its number reused) meanwhile.
	var g *os.File
	var oerr error
	if err := rc.Control(func(fd uintptr) {
		g, oerr = os.Open("/proc/self/fd/" + strconv.FormatUint(uint64(fd), 10))
	}); err != nil {
		return nil, err
	}
	return g, oerr
}
