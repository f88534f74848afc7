package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// The rules that decide what under a watch root is an image or a metafile,
// and which file an image is (its identity), live here and only here: the
// watcher, syncctl's one-shot scan (jobs.Scan) and the upload job all go
// through a Tree, so they cannot disagree about what an image is, and the
// task ids built from its facts match wherever they are computed.

// Kind says what a file is, by its name, to imagesync.
type Kind uint8

// Kinds of files.
const (
	KindNone     Kind = iota // not looked at
	KindImage                // matches one of the root's patterns
	KindMeta                 // <image>.meta
	KindTemplate             // _template.meta
)

func (k Kind) String() string {
	switch k {
	case KindImage:
		return "image"
	case KindMeta:
		return "metafile"
	case KindTemplate:
		return "template"
	}
	return "none"
}

// FileID is a file's identity: device and inode. The watcher reports it with
// every image, and the upload opens the file only if it is still this one.
type FileID struct{ Dev, Ino uint64 }

// IDOf returns the identity in a stat result (zero where the platform has
// none).
func IDOf(fi fs.FileInfo) FileID {
	dev, ino := fileIdentity(fi)
	return FileID{Dev: dev, Ino: ino}
}

// LinkPolicy says which symlinked images and metafiles a root takes.
type LinkPolicy string

// Link policies (watch[].follow_symlinks).
const (
	// LinksInside takes a symlinked file only when its target resolves
	// inside one of the watch roots: a link cannot bring in a file from
	// elsewhere on the host. The default.
	LinksInside LinkPolicy = "inside"
	// LinksNever takes no symlinked file.
	LinksNever LinkPolicy = "never"
	// LinksAny takes symlinked files wherever they point: anyone who can
	// write to the folder can have syncd upload any file it can read.
	LinksAny LinkPolicy = "any"
)

// ErrLinkRefused is matched (errors.Is) by every *LinkError.
var ErrLinkRefused = errors.New("symlink refused")

// LinkError is a symlinked image or metafile the root's link policy
// refuses. It names the link and its target.
type LinkError struct {
	Link   string // the link's absolute path
	Target string // where it resolves
	Policy LinkPolicy
}

func (e *LinkError) Error() string {
	if e.Policy == LinksNever {
		return fmt.Sprintf("symlink %s -> %s not used: this folder takes no symlinks (follow_symlinks: never); put the file itself there", e.Link, e.Target)
	}
	return fmt.Sprintf("symlink %s -> %s not used: its target is outside every watch root (follow_symlinks: inside); move or copy the file into a watched folder", e.Link, e.Target)
}

// Is makes errors.Is(err, ErrLinkRefused) true.
func (e *LinkError) Is(target error) bool { return target == ErrLinkRefused }

// Roots is a validated set of watch roots with their rules.
type Roots struct {
	trees []*Tree
}

// Tree is one watch root and its rules. It holds no state about the files
// under it: it answers questions about them.
type Tree struct {
	dir      string // as configured
	abs      string
	patterns []string
	poll     bool
	links    LinkPolicy
	set      *Roots // every root, for "inside a watch root"

	// beforeOpen, if set, runs between the check and the open (tests use
	// it to swap files in that window).
	beforeOpen func()
}

// NewRoots validates the roots: each needs a directory, no two may be the
// same, and patterns must be valid globs of base names.
func NewRoots(roots []Root) (*Roots, error) {
	rs := &Roots{}
	seen := map[string]string{}
	for i, rc := range roots {
		if rc.Dir == "" {
			return nil, fmt.Errorf("watch: root %d: empty directory", i)
		}
		abs, err := filepath.Abs(rc.Dir)
		if err != nil {
			return nil, fmt.Errorf("watch: root %q: %w", rc.Dir, err)
		}
		if prev, dup := seen[abs]; dup {
			return nil, fmt.Errorf("watch: root %q: same directory as %q", rc.Dir, prev)
		}
		seen[abs] = rc.Dir
		pats := rc.Patterns
		if len(pats) == 0 {
			pats = DefaultPatterns()
		}
		for _, p := range pats {
			if _, err := filepath.Match(p, ""); err != nil {
				return nil, fmt.Errorf("watch: root %q: pattern %q: %w", rc.Dir, p, err)
			}
			if strings.Contains(p, "/") {
				return nil, fmt.Errorf("watch: root %q: pattern %q: patterns match base names, without '/'", rc.Dir, p)
			}
		}
		links := rc.Links
		switch links {
		case "":
			links = LinksInside
		case LinksInside, LinksNever, LinksAny:
		default:
			return nil, fmt.Errorf("watch: root %q: follow_symlinks %q: want inside, never or any", rc.Dir, links)
		}
		rs.trees = append(rs.trees, &Tree{dir: rc.Dir, abs: abs, patterns: slices.Clone(pats), poll: rc.Poll, links: links, set: rs})
	}
	return rs, nil
}

// Trees returns the roots in configuration order.
func (rs *Roots) Trees() []*Tree { return rs.trees }

// Find returns the root configured with dir, or nil.
func (rs *Roots) Find(dir string) *Tree {
	for _, t := range rs.trees {
		if t.dir == dir {
			return t
		}
	}
	return nil
}

// Dir is the root's directory as configured.
func (t *Tree) Dir() string { return t.dir }

// Abs is the root's absolute path.
func (t *Tree) Abs() string { return t.abs }

// Links is the root's link policy.
func (t *Tree) Links() LinkPolicy { return t.links }

// Patterns are the root's image globs.
func (t *Tree) Patterns() []string { return slices.Clone(t.patterns) }

// Classify says what a base name is under this root.
func (t *Tree) Classify(name string) Kind { return Classify(name, t.patterns) }

// AbsOf is the absolute path of rel ('/'-separated, "" for the root).
func (t *Tree) AbsOf(rel string) string {
	if rel == "" {
		return t.abs
	}
	return filepath.Join(t.abs, filepath.FromSlash(rel))
}

// CheckRoot reports why the root cannot be walked, or nil. A root that is a
// symlink to a directory is fine: the operator chose it.
func (t *Tree) CheckRoot() error {
	info, err := os.Stat(t.abs)
	if err == nil && !info.IsDir() {
		err = errors.New("not a directory")
	}
	return err
}

// Entry is what the rules make of one path under a root.
type Entry struct {
	RelPath string
	Kind    Kind // by the base name; KindNone for everything imagesync ignores
	// Dir is a real directory (walked into); LinkedDir a symlink to one
	// (never followed, so symlink loops cannot trap a walk).
	Dir, LinkedDir bool
	// Symlink: the path itself is a symbolic link. For a usable one,
	// Target is where it resolves (absolute, without symlinks).
	Symlink bool
	Target  string
	// Info describes the regular file a candidate (Kind != KindNone) is: the
	// link's target for a symlink. Nil when it is no usable regular file.
	Info fs.FileInfo
	// Gone: nothing is there (any more).
	Gone bool
	// Err says why a candidate cannot be used: a broken symlink, a stat
	// that failed. Non-candidates never carry one.
	Err error
}

// Usable reports a candidate that is a regular file the rules accept.
func (e Entry) Usable() bool { return e.Kind != KindNone && e.Info != nil && e.Err == nil }

// ID is the identity of the file a usable entry is.
func (e Entry) ID() FileID {
	if e.Info == nil {
		return FileID{}
	}
	return IDOf(e.Info)
}

// Lstat applies the rules to one path under the root, as it is now.
func (t *Tree) Lstat(rel string) Entry {
	info, err := os.Lstat(t.AbsOf(rel))
	k := t.Classify(path.Base(rel))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Entry{RelPath: rel, Kind: k, Gone: true}
		}
		e := Entry{RelPath: rel, Kind: k}
		if k != KindNone {
			e.Err = fmt.Errorf("cannot stat: %w", err)
		}
		return e
	}
	return t.entry(rel, k, info.Mode().Type(), func() (fs.FileInfo, error) { return info, nil })
}

// entry decides what the path rel of type typ is; info lstats it when
// needed (a directory listing has the type without a stat).
func (t *Tree) entry(rel string, k Kind, typ fs.FileMode, info func() (fs.FileInfo, error)) Entry {
	e := Entry{RelPath: rel, Kind: k}
	switch {
	case typ.IsDir():
		e.Dir = true
	case typ&fs.ModeSymlink != 0:
		e.Symlink = true
		return t.follow(e)
	case typ.IsRegular():
		if k == KindNone {
			return e
		}
		fi, err := info()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			e.Gone = true
		case err != nil:
			e.Err = fmt.Errorf("cannot stat: %w", err)
		case fi.Mode().IsRegular():
			e.Info = fi
		}
	}
	// Anything else (a FIFO, a socket, a device) is not an image.
	return e
}

// follow decides about a symlink. Directories are never followed; a
// symlinked file the link policy takes is named by the link and described
// by its target.
func (t *Tree) follow(e Entry) Entry {
	abs := t.AbsOf(e.RelPath)
	info, err := os.Stat(abs)
	if err != nil {
		if e.Kind != KindNone {
			e.Err = fmt.Errorf("broken symlink: %w", err)
		}
		return e
	}
	if info.IsDir() {
		e.LinkedDir = true
		return e
	}
	if e.Kind == KindNone || !info.Mode().IsRegular() {
		return e
	}
	target, err := filepath.EvalSymlinks(abs)
	if err != nil {
		e.Err = fmt.Errorf("broken symlink: %w", err)
		return e
	}
	switch t.links {
	case LinksNever:
		e.Err = &LinkError{Link: abs, Target: target, Policy: t.links}
		return e
	case LinksInside:
		if _, _, ok := t.set.within(target); !ok {
			e.Err = &LinkError{Link: abs, Target: target, Policy: t.links}
			return e
		}
		// Describe the file that was found inside, not whatever the link
		// points to a moment later.
		if info, err = os.Lstat(target); err != nil || !info.Mode().IsRegular() {
			e.Err = fmt.Errorf("symlink %s -> %s: %w", abs, target, ErrChanged)
			return e
		}
	}
	e.Target, e.Info = target, info
	return e
}

// within finds the watch root whose directory (symlinks resolved) holds p,
// an absolute path without symlinks, and p's path relative to it.
func (rs *Roots) within(p string) (rootDir, rel string, ok bool) {
	for _, t := range rs.trees {
		dir, err := filepath.EvalSymlinks(t.abs)
		if err != nil {
			continue
		}
		r, err := filepath.Rel(dir, p)
		if err != nil || r == "." || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) || filepath.IsAbs(r) {
			continue
		}
		return dir, r, true
	}
	return "", "", false
}

// Visitor receives what Walk finds. Nil funcs are not called.
type Visitor struct {
	// EnterDir is called for each directory (rel "" is the root) before it
	// is listed, so that a watch added there sees what the listing misses.
	EnterDir func(rel string)
	// Listed reports a directory's listing: nil, or why it failed
	// (fs.ErrNotExist if it vanished). Its entries follow only after nil.
	Listed func(rel string, err error)
	// Entry is called for every name that is not ignored and not a
	// directory walked into: candidates with their facts or the reason they
	// cannot be used, linked directories, and the rest (KindNone, nothing
	// looked up).
	Entry func(e Entry)
}

// Walk walks the directory rel ("" for the root) and everything below it,
// in lexical order, applying the rules: ignored names (hidden, temporary,
// partial) are skipped, files and directories alike; symlinked directories
// are reported, never entered. It stops only when ctx is done.
func (t *Tree) Walk(ctx context.Context, rel string, v Visitor) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if v.EnterDir != nil {
		v.EnterDir(rel)
	}
	entries, err := os.ReadDir(t.AbsOf(rel))
	if v.Listed != nil {
		v.Listed(rel, err)
	}
	if err != nil {
		return nil
	}
	for _, de := range entries {
		name := de.Name()
		if Ignored(name) {
			continue
		}
		crel := path.Join(rel, name)
		if de.IsDir() {
			if err := t.Walk(ctx, crel, v); err != nil {
				return err
			}
			continue
		}
		e := t.entry(crel, t.Classify(name), de.Type(), de.Info)
		if v.Entry != nil {
			v.Entry(e)
		}
	}
	return nil
}

// ErrChanged is returned by Open when the path no longer holds the file
// that was checked: it changed or was replaced since.
var ErrChanged = errors.New("the file changed since it was checked")

// Open opens the file at rel for reading, applying the rules as they stand
// now, and only if it is the file whose identity is want (a zero want
// accepts the file the rules accept now). A path swapped after the check is
// never read: the open resolves beneath the watch root that held the file
// (os.Root: a symlink swapped into the path cannot lead out of it), never
// blocks on a FIFO swapped in, and the opened file's device and inode must be
// want's, or Open closes it unread and returns ErrChanged. Read the file
// only through the returned *os.File: its identity was checked, the path's
// may change at any time. Errors: fs.ErrNotExist, ErrChanged,
// ErrLinkRefused (a *LinkError), or why it could not be opened.
func (t *Tree) Open(rel string, want FileID) (*os.File, error) {
	e := t.Lstat(rel)
	switch {
	case e.Gone:
		return nil, &fs.PathError{Op: "open", Path: t.AbsOf(rel), Err: fs.ErrNotExist}
	case e.Err != nil:
		return nil, e.Err
	case e.Info == nil:
		return nil, fmt.Errorf("%s is not a regular file", t.AbsOf(rel))
	}
	if want == (FileID{}) {
		want = e.ID()
	} else if e.ID() != want {
		return nil, ErrChanged
	}
	if t.beforeOpen != nil {
		t.beforeOpen()
	}
	f, err := t.open(rel, e)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() || IDOf(fi) != want {
		f.Close()
		return nil, ErrChanged
	}
	return f, nil
}

// open opens the file e describes: beneath the root holding it, or for a
// link the policy lets point anywhere, at its target without following a
// link swapped in there.
func (t *Tree) open(rel string, e Entry) (*os.File, error) {
	if !e.Symlink {
		return openReadOnly(t.abs, rel)
	}
	if dir, trel, inside := t.set.within(e.Target); inside {
		return openReadOnly(dir, filepath.ToSlash(trel))
	}
	if t.links == LinksAny {
		return os.OpenFile(e.Target, os.O_RDONLY|openNonblock|openNoFollow, 0)
	}
	// Only a race gets here: the target left the roots since the Lstat.
	return nil, &LinkError{Link: t.AbsOf(rel), Target: e.Target, Policy: t.links}
}

// openReadOnly opens rel under dir without following a symlink out of dir
// (os.Root), and without blocking on a FIFO. Errors name the full path, as
// os.Open's do (os.Root's name only rel).
func openReadOnly(dir, rel string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(filepath.FromSlash(rel), os.O_RDONLY|openNonblock, 0)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, filepath.FromSlash(rel)), Err: pe.Err}
	}
	return f, err
}
