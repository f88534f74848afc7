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

// Scan walks every watch root once and returns its image files with the
// facts the watcher would report for them, so the task ids built from them
// match the daemon's. It applies the watcher's rules: ignored names (hidden,
// temporary, partial) are skipped, files and directories alike; metafiles are
// never images; symlinked directories are not followed; symlinked files are
// followed and named by the link's path. Unlike the watcher it does not wait
// for files to settle: a file being written shows with its current size.
// Only a cancelled ctx makes it fail.
func Scan(ctx context.Context, roots []config.Watch) (*ScanResult, error) {
	res := &ScanResult{}
	for _, w := range roots {
		if err := scanRoot(ctx, w, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func scanRoot(ctx context.Context, w config.Watch, res *ScanResult) error {
	abs, err := filepath.Abs(w.Dir)
	if err != nil {
		res.Problems = append(res.Problems, ScanProblem{Root: w.Dir, Path: w.Dir, Err: err})
		return nil
	}
	problem := func(rel string, err error) {
		res.Problems = append(res.Problems, ScanProblem{Root: w.Dir, RelPath: rel, Path: absUnder(abs, rel), Err: err})
	}
	info, err := os.Stat(abs)
	if err == nil && !info.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		problem("", fmt.Errorf("watch root unusable: %w", err))
		return nil
	}
	// A root that is itself a symlink is followed (the watcher stats it);
	// WalkDir would not descend into it.
	walkFrom := abs
	if li, lerr := os.Lstat(abs); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
		if walkFrom, err = filepath.EvalSymlinks(abs); err != nil {
			problem("", fmt.Errorf("watch root unusable: %w", err))
			return nil
		}
	}
	patterns := w.ImagePatterns()
	return filepath.WalkDir(walkFrom, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, rerr := filepath.Rel(walkFrom, p)
		if rerr != nil {
			return rerr // cannot happen: WalkDir only yields paths under walkFrom
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if err != nil {
			if rel != "" && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we looked
			}
			if d != nil && d.IsDir() {
				problem(rel, fmt.Errorf("cannot list directory: %w", err))
				return fs.SkipDir
			}
			problem(rel, err)
			return nil
		}
		if rel == "" {
			return nil
		}
		name := d.Name()
		if watch.Ignored(name) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		t := d.Type()
		switch {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			if !IsImageName(name, patterns) {
				return nil // a symlinked directory, or a file that is no image
			}
			info, err := os.Stat(p)
			if err != nil {
				problem(rel, fmt.Errorf("broken symlink: %w", err))
				return nil
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			addImage(w, abs, rel, info, res, problem)
		case t.IsRegular():
			if !IsImageName(name, patterns) {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					problem(rel, fmt.Errorf("cannot stat: %w", err))
				}
				return nil
			}
			addImage(w, abs, rel, info, res, problem)
		}
		return nil
	})
}

func addImage(w config.Watch, abs, rel string, info fs.FileInfo, res *ScanResult, problem func(string, error)) {
	p := absUnder(abs, rel)
	// The watcher only reports files it can open; so does the scan, so that
	// plan does not promise an upload that would fail.
	if err := checkReadable(p); err != nil {
		problem(rel, fmt.Errorf("cannot read: %w", err))
		return
	}
	res.Images = append(res.Images, factsOf(w.Dir, rel, p, info))
}

func factsOf(root, rel, abs string, info fs.FileInfo) FileFacts {
	dev, ino := fileIdentity(info)
	return FileFacts{Root: root, RelPath: rel, AbsPath: abs, Size: info.Size(), ModTime: info.ModTime(), Dev: dev, Inode: ino}
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
	if watch.Ignored(name) || name == watch.TemplateName {
		return false
	}
	if strings.HasSuffix(name, watch.MetaSuffix) && matchAny(patterns, strings.TrimSuffix(name, watch.MetaSuffix)) {
		return false
	}
	return matchAny(patterns, name)
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
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
	fileAbs := absUnder(rootAbs, rel)
	info, err := os.Stat(fileAbs)
	if err != nil {
		return FileFacts{}, fmt.Errorf("%s: %w", p, err)
	}
	if !info.Mode().IsRegular() {
		return FileFacts{}, fmt.Errorf("%s is not a regular file", p)
	}
	if err := checkReadable(fileAbs); err != nil {
		return FileFacts{}, fmt.Errorf("%s: %w", p, err)
	}
	return factsOf(w.Dir, rel, fileAbs, info), nil
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
