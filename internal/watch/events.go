package watch

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Event is what the watcher reports: one of ImageReady, ImageRemoved,
// MetaChanged, RescanDone, Error or ErrorCleared. Consumers type-switch on
// it.
type Event interface{ watchEvent() }

// ImageReady reports an image whose size and mtime have been stable for the
// settle time and that could be opened for reading. A file that changes after
// being reported is reported again once it settles again.
type ImageReady struct {
	Root    string // the watch root's Dir as configured
	RelPath string // '/'-separated, relative to Root
	AbsPath string // absolute path to open (a symlink is opened through the link)
	Size    int64
	ModTime time.Time
	Dev     uint64
	Inode   uint64
}

// ImageRemoved reports that a previously reported image is gone (deleted,
// renamed away, or its directory removed). The watcher only reports it; what
// to do about the remote copy is the daemon's decision.
type ImageRemoved struct {
	Root    string
	RelPath string
}

// MetaChanged reports a metafile that settled after a change, appeared or was
// removed. The registration of the images it affects should be redone.
type MetaChanged struct {
	Root    string
	RelPath string // the metafile itself
	// Template is true for _template.meta, which affects every image in
	// Affects (a directory, "" for the root) and below it. Otherwise the
	// metafile is X.meta and Affects is the RelPath of image X.
	Template bool
	Affects  string
	Removed  bool
	// Since is when the watcher first saw the metafile as it is reported:
	// every write that made it so came before. Whatever reads it after Since
	// reads this content.
	Since time.Time
}

// AffectsImage reports whether the image at relPath is affected.
func (m MetaChanged) AffectsImage(relPath string) bool {
	if !m.Template {
		return relPath == m.Affects
	}
	return underDir(m.Affects, relPath)
}

// RescanDone reports the end of a full scan of one root.
type RescanDone struct {
	Root     string
	Images   int // image files present under the root (settled or not)
	Duration time.Duration
	Initial  bool // the first scan after Run started
	// Problems are the root's current problems (each reported once as an
	// Error, and not yet cleared), by path, at most MaxProblems of them;
	// ProblemsTotal counts them all.
	Problems      []Error
	ProblemsTotal int
}

// MaxProblems bounds RescanDone.Problems: a folder full of broken links must
// not make every rescan copy them all.
const MaxProblems = 1000

// Error reports something under a root the watcher could not read: an
// unreadable file or directory, a broken symlink, a missing root, or a
// root's fallback to polling when inotify is unavailable (wrapping
// ErrWatchLimit when the kernel's limits were reached). The watcher
// keeps going, and reports the same problem again only after it changed or
// was fixed in between.
type Error struct {
	Root    string
	RelPath string // "" for the root itself
	Path    string // absolute
	Err     error
	// Notice marks a root's switch to polling: news about how the root is
	// watched, not a problem with a file, so no ErrorCleared follows it.
	Notice bool
}

func (e Error) Error() string { return fmt.Sprintf("watch %s: %v", e.Path, e.Err) }
func (e Error) Unwrap() error { return e.Err }

// ErrorCleared reports that the problem an Error reported at a path is
// over: the file was fixed, removed, or became acceptable.
type ErrorCleared struct {
	Root    string
	RelPath string
	Path    string
}

// ErrWatchLimit is wrapped by the Error event sent when a root falls back to
// polling because the kernel's inotify limits were reached.
var ErrWatchLimit = errors.New("inotify watch limit reached, falling back to polling (raise fs.inotify.max_user_watches / max_user_instances with sysctl)")

func (ImageReady) watchEvent()   {}
func (ImageRemoved) watchEvent() {}
func (MetaChanged) watchEvent()  {}
func (RescanDone) watchEvent()   {}
func (Error) watchEvent()        {}
func (ErrorCleared) watchEvent() {}

// underDir reports whether rel is dir itself or inside it; dir "" is the root.
func underDir(dir, rel string) bool {
	if dir == "" {
		return true
	}
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}

// parentDir is path.Dir with "" (not ".") for the root.
func parentDir(rel string) string {
	d := path.Dir(rel)
	if d == "." {
		return ""
	}
	return d
}
