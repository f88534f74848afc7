//go:build unix

package watch

import (
	"errors"
	"io/fs"
	"syscall"
)

// fileIdentity returns the device and inode numbers of a stat result.
func fileIdentity(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // int32 on darwin
	}
	return 0, 0
}

// Flags of Open: O_NONBLOCK keeps a FIFO swapped in after the stat from
// blocking; O_NOFOLLOW refuses a link swapped in at the last component.
const (
	openNonblock = syscall.O_NONBLOCK
	openNoFollow = syscall.O_NOFOLLOW
)

// isWatchLimit reports the kernel's inotify limits: ENOSPC from
// inotify_add_watch (max_user_watches) and EMFILE from inotify_init
// (max_user_instances).
func isWatchLimit(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE)
}

// Owner returns the owning user and group in a stat result.
func Owner(fi fs.FileInfo) (uid, gid uint32, ok bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid, true
	}
	return 0, 0, false
}
