//go:build !unix

package watch

import "io/fs"

func fileIdentity(fs.FileInfo) (dev, ino uint64) { return 0, 0 }

const (
	openNonblock = 0
	openNoFollow = 0
)

func isWatchLimit(error) bool { return false }
