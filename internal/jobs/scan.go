package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/watch"
)

// ScanProblem is something under a watch root a scan could not read. A scan
// reports it and goes on: one unreadable directory must not hide the rest.
type ScanProblem struct {
	Root    string // the watch root's dir as configured
	RelPath string // '/'-separated; "" for the root itself
	Path    string // absolute
	Err     error
}

func (p ScanProblem) Error() string { return fmt.Sprintf("%s: %v", p.Path, p.Err) }
func (p ScanProblem) Unwrap() error { return p.Err }

// ScanResult is a one-shot view of the image files under the watch roots.
type ScanResult struct {
	Images   []FileFacts // in root order, then in walk (lexical) order
	Problems []ScanProblem
}

// WatchRoots turns the config's watch entries into the watcher's roots:
// the daemon's watcher, Scan and the upload job apply the same rules.
func WatchRoots(ws []config.Watch) []watch.Root {
	roots := make([]watch.Root, len(ws))
	for i, w := range ws {
		roots[i] = watch.Root{Dir: w.Dir, Patterns: w.ImagePatterns(), Links: watch.LinkPolicy(w.FollowSymlinks)}
	}
	return roots
}

// Scan walks every watch root once and returns its image files with the
// facts the watcher would report for them, so the task ids built from them
// match the daemon's. It walks with the watcher's own rules (watch.Tree):
// ignored names (hidden, temporary, partial) are skipped, files and
// directories alike; metafiles are never images; symlinked directories are
// not followed; symlinked files are taken as the rules take them and named
// by the link's path; only files that can be opened are listed. Unlike the
// watcher it does not wait for files to settle: a file being written shows
// with its current size. Only a cancelled ctx makes it fail.
func Scan(ctx context.Context, roots []config.Watch) (*ScanResult, error) {
	rs, err := watch.NewRoots(WatchRoots(roots))
	if err != nil {
		return nil, err
	}
	res := &ScanResult{}
	for _, t := range rs.Trees() {
		if err := scanRoot(ctx, t, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func scanRoot(ctx context.Context, t *watch.Tree, res *ScanResult) error {
	problem := func(rel string, err error) {
		res.Problems = append(res.Problems, ScanProblem{Root: t.Dir(), RelPath: rel, Path: t.AbsOf(rel), Err: err})
	}
	if err := t.CheckRoot(); err != nil {
		problem("", fmt.Errorf("watch root unusable: %w", err))
		return nil
	}
	return t.Walk(ctx, "", watch.Visitor{
		Listed: func(rel string, err error) {
			if err != nil && (rel == "" || !errors.Is(err, fs.ErrNotExist)) {
				problem(rel, fmt.Errorf("cannot list directory: %w", err))
			}
		},
		Entry: func(e watch.Entry) {
			if e.Kind != watch.KindImage {
				return
			}
			switch {
			case e.Err != nil:
				problem(e.RelPath, e.Err)
			case e.Usable():
				// The watcher only reports files it can open; so does the
				// scan, so that plan does not promise an upload that
				// would fail.
				f, err := t.Open(e.RelPath, e.ID())
				if err != nil {
					problem(e.RelPath, fmt.Errorf("cannot read: %w", err))
					return
				}
				f.Close()
				res.Images = append(res.Images, factsOf(t, e))
			}
		},
	})
}

func factsOf(t *watch.Tree, e watch.Entry) FileFacts {
	id := e.ID()
	return FileFacts{Root: t.Dir(), RelPath: e.RelPath, AbsPath: t.AbsOf(e.RelPath), Size: e.Info.Size(), ModTime: e.Info.ModTime(), Dev: id.Dev, Inode: id.Ino}
}

func absUnder(abs, rel string) string {
	if rel == "" {
		return abs
	}
	return filepath.Join(abs, filepath.FromSlash(rel))
}

// IsImageName applies the watcher's naming rules to a base name: not
// ignored, not a metafile, and matching one of the patterns.
func IsImageName(name string, patterns []string) bool {
	return watch.Classify(name, patterns) == watch.KindImage
}

// StatImage finds the watch root holding the file at p (relative to the
// working directory or absolute) and returns its facts, refusing what the
// watcher would never upload: files outside every root, ignored or
// non-image names, files inside symlinked directories, and non-regular files.
func StatImage(roots []config.Watch, p string) (FileFacts, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return FileFacts{}, err
	}
	w, rootAbs, rel, ok := findRoot(roots, abs)
	if !ok {
		// Perhaps the root or the path goes through a symlink: compare the
		// resolved directories.
		if dir, derr := filepath.EvalSymlinks(filepath.Dir(abs)); derr == nil {
			w, rootAbs, rel, ok = findRootResolved(roots, filepath.Join(dir, filepath.Base(abs)))
		}
	}
	if !ok {
		return FileFacts{}, fmt.Errorf("%s is not under any watch root (%s)", p, rootList(roots))
	}
	segs := strings.Split(rel, "/")
	for i, seg := range segs {
		if watch.Ignored(seg) {
			return FileFacts{}, fmt.Errorf("%s: the name %q is ignored by the watcher (hidden, temporary or partial)", p, seg)
		}
		if i == len(segs)-1 {
			break
		}
		li, err := os.Lstat(absUnder(rootAbs, strings.Join(segs[:i+1], "/")))
		if err != nil {
			return FileFacts{}, fmt.Errorf("%s: %w", p, err)
		}
		if li.Mode()&fs.ModeSymlink != 0 {
			return FileFacts{}, fmt.Errorf("%s: %s is a symlinked directory, which the watcher does not follow", p, strings.Join(segs[:i+1], "/"))
		}
	}
	if !IsImageName(path.Base(rel), w.ImagePatterns()) {
		return FileFacts{}, fmt.Errorf("%s is not an image file: its name matches none of the watch root's patterns (%s)", p, strings.Join(w.ImagePatterns(), ", "))
	}
	rs, err := watch.NewRoots(WatchRoots([]config.Watch{w}))
	if err != nil {
		return FileFacts{}, err
	}
	t := rs.Trees()[0]
	e := t.Lstat(rel)
	switch {
	case e.Gone:
		return FileFacts{}, &fs.PathError{Op: "stat", Path: p, Err: syscall.ENOENT}
	case e.Err != nil:
		return FileFacts{}, fmt.Errorf("%s: %w", p, e.Err)
	case !e.Usable():
		return FileFacts{}, fmt.Errorf("%s is not a regular file", p)
	}
	f, err := t.Open(rel, e.ID())
	if err != nil {
		return FileFacts{}, fmt.Errorf("%s: %w", p, err)
	}
	f.Close()
	facts := factsOf(t, e)
	facts.Root, facts.AbsPath = w.Dir, absUnder(rootAbs, rel)
	return facts, nil
}

// findRoot picks the deepest root lexically containing abs.
func findRoot(roots []config.Watch, abs string) (config.Watch, string, string, bool) {
	return pickRoot(roots, abs, func(dir string) (string, error) { return filepath.Abs(dir) })
}

func findRootResolved(roots []config.Watch, resolved string) (config.Watch, string, string, bool) {
	return pickRoot(roots, resolved, func(dir string) (string, error) {
		a, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		return filepath.EvalSymlinks(a)
	})
}

func pickRoot(roots []config.Watch, abs string, rootPath func(string) (string, error)) (config.Watch, string, string, bool) {
	var (
		best    config.Watch
		bestAbs string
		bestRel string
		found   bool
	)
	for _, w := range roots {
		ra, err := rootPath(w.Dir)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(ra, abs)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			continue
		}
		if !found || len(ra) > len(bestAbs) {
			best, bestAbs, bestRel, found = w, ra, filepath.ToSlash(rel), true
		}
	}
	return best, bestAbs, bestRel, found
}

func rootList(roots []config.Watch) string {
	if len(roots) == 0 {
		return "none configured"
	}
	dirs := make([]string, len(roots))
	for i, w := range roots {
		dirs[i] = w.Dir
	}
	return strings.Join(dirs, ", ")
}
