//go:build linux

package pithos

import (
	"io/fs"
	"syscall"
)

// identityOf extracts the cache identity from a Stat of a real file. The
// ctime is part of it because mtime alone can be set back (touch -r, cp -p
// over an existing file); any in-place write moves the ctime forward.
func identityOf(fi fs.FileInfo) (fileIdentity, bool) {
	if fi == nil || !fi.Mode().IsRegular() {
		return fileIdentity{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdentity{}, false
	}
	return fileIdentity{
		Dev:     uint64(st.Dev),
		Ino:     uint64(st.Ino),
		Size:    fi.Size(),
		MtimeNs: fi.ModTime().UnixNano(),
		CtimeNs: st.Ctim.Sec*1e9 + st.Ctim.Nsec,
	}, true
}
