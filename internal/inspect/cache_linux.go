//go:build linux

package inspect

import (
	"io/fs"
	"syscall"
)

// identityOf is the hashmap cache's key of a file (see
// pithos.HashmapCache): ctime too, since mtime can be set back.
func identityOf(fi fs.FileInfo) (Identity, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() {
		return Identity{}, false
	}
	return Identity{
		Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: fi.Size(),
		MtimeNs: fi.ModTime().UnixNano(), CtimeNs: st.Ctim.Sec*1e9 + st.Ctim.Nsec,
	}, true
}
