package watch

import (
	"path/filepath"
	"strings"
)

// TemplateName is the per-directory metadata template.
const TemplateName = "_template.meta"

// MetaSuffix turns an image name into its metafile name.
const MetaSuffix = ".meta"

// DefaultPatterns are the image globs used when a Root has none.
var defaultPatterns = []string{"*.diskdump"}

// DefaultPatterns returns the image globs used when a Root sets none.
func DefaultPatterns() []string { return append([]string(nil), defaultPatterns...) }

// Ignored reports whether a file or directory name is never looked at:
// hidden names and the usual temporary and partial-download names, which
// producers write before renaming into place.
func Ignored(name string) bool {
	return name == "" || strings.HasPrefix(name, ".") ||
		strings.HasSuffix(name, ".part") || strings.HasSuffix(name, ".tmp") ||
		strings.HasSuffix(name, "~")
}

// Classify says what a file's base name is, given a root's image patterns.
// Metafiles are checked first so a broad pattern such as "*" does not turn
// X.meta into an image of its own.
func Classify(name string, patterns []string) Kind {
	switch {
	case Ignored(name):
		return KindNone
	case name == TemplateName:
		return KindTemplate
	case strings.HasSuffix(name, MetaSuffix) && matchAny(patterns, strings.TrimSuffix(name, MetaSuffix)):
		return KindMeta
	case matchAny(patterns, name):
		return KindImage
	}
	return KindNone
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		// Invalid patterns are refused by NewRoots; an invalid one matches nothing.
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

// ignoredPath reports whether any segment of a '/'-separated relative path is
// ignored; events can name paths inside directories that were just renamed to
// an ignored name.
func ignoredPath(rel string) bool {
	for seg := range strings.SplitSeq(rel, "/") {
		if Ignored(seg) {
			return true
		}
	}
	return false
}
