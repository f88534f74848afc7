//go:build !linux

package pithos

import "io/fs"

// identityOf: outside Linux there is no portable (device, inode, ctime), so
// nothing is cached and every upload re-hashes.
func identityOf(fs.FileInfo) (fileIdentity, bool) { return fileIdentity{}, false }
