package daemon

import (
	"fmt"
	"os"
	"strings"

	"github.com/imagesync/imagesync/internal/config"
)

// protectedHardlinks is Linux's switch that stops users from hard-linking
// files they may neither read nor write.
const protectedHardlinks = "/proc/sys/fs/protected_hardlinks"

// hardlinkWarnings says which watch roots let a writer hand syncd any file
// of their filesystem: a hard link is a regular file, the link policy
// cannot tell it from an image, and with fs.protected_hardlinks off anyone
// who can write the root can link a file only syncd may read. A root that
// only its owner can write, or whose owners: policy checks the file's own
// owner, is not at risk. read reads the sysctl (os.ReadFile); where it
// cannot be read (not Linux) nothing is said.
func hardlinkWarnings(roots []config.Watch, read func(string) ([]byte, error)) []string {
	b, err := read(protectedHardlinks)
	if err != nil || strings.TrimSpace(string(b)) != "0" {
		return nil
	}
	var out []string
	for _, w := range roots {
		st, err := os.Stat(w.Dir)
		if err != nil || st.Mode().Perm()&0o022 == 0 || len(w.Owners) > 0 {
			continue
		}
		out = append(out, fmt.Sprintf("fs.protected_hardlinks is 0 and watch root %s is writable by group or others (mode %04o): "+
			"whoever writes there can hard-link any file of that filesystem syncd can read, and it would be uploaded; "+
			"set fs.protected_hardlinks = 1 (sysctl), or owners: for this root", w.Dir, st.Mode().Perm()))
	}
	return out
}
