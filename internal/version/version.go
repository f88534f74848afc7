// Package version says which build of imagesync is running, for the
// commands' --version.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is set at link time by release builds:
//
//	go build -ldflags "-X github.com/imagesync/imagesync/internal/version.Version=v1.2.3" ./cmd/...
//
// Without it the module version and VCS revision recorded by the Go
// toolchain are used.
var Version = ""

// String is the version line's text after the program name, e.g.
// "v1.2.3 (3f2a1c9, go1.26.0)" or "devel (3f2a1c9-dirty, 2025-01-02T03:04:05Z, go1.26.0)".
func String() string {
	info, ok := debug.ReadBuildInfo()
	return format(Version, info, ok)
}

func format(linked string, info *debug.BuildInfo, ok bool) string {
	v := linked
	var details []string
	if ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		var rev, when string
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			details = append(details, rev)
		}
		if when != "" {
			details = append(details, when)
		}
	}
	if v == "" {
		v = "devel"
	}
	details = append(details, runtime.Version())
	return fmt.Sprintf("%s (%s)", v, strings.Join(details, ", "))
}
