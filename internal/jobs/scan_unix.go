//go:build unix

package jobs

import (
	"io/fs"
	"os"
	"syscall"
)

// fileIdentity returns the device and inode numbers, as the watcher does, so
// upload task ids built from a scan match the daemon's.
func fileIdentity(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // narrower types on some platforms
	}
	return 0, 0
}

// checkReadable opens and closes the file; O_NONBLOCK keeps a FIFO from
// blocking the scan.
func checkReadable(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	return f.Close()
}
