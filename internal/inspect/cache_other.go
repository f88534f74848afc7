//go:build !linux

package inspect

import "io/fs"

// identityOf: outside Linux there is no portable (device, inode, ctime), so
// nothing is cached, as with the hashmap cache.
func identityOf(fs.FileInfo) (Identity, bool) { return Identity{}, false }
