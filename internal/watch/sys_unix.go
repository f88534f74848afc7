//go:build unix

package watch

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// fileIdentity returns the device and inode numbers of a stat result.
func fileIdentity(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // int32 on darwin
	}
	return 0, 0
}

// checkReadable opens the file for reading and closes it again. O_NONBLOCK
// keeps a FIFO swapped in after the stat from blocking the watcher.
func checkReadable(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// isWatchLimit reports the kernel's inotify limits: ENOSPC from
// inotify_add_watch (max_user_watches) and EMFILE from inotify_init
// (max_user_instances).
func isWatchLimit(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE)
}
