//go:build !unix

package watch

import "io/fs"

func fileIdentity(fs.FileInfo) (dev, ino uint64) { return 0, 0 }

const (
	openNonblock = 0
	openNoFollow = 0
)

func isWatchLimit(error) bool { return false }

// Owner is unknown here.
func Owner(fs.FileInfo) (uid, gid uint32, ok bool) { return 0, 0, false }
