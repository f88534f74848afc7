package inspect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Identity is what must not change for a cached report to describe a file:
// the key of the hashmap cache (device, inode, size, mtime, ctime).
type Identity struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
}

// Detector inspects image files once per content: each file's report is
// kept in a cache directory (beside the hashmap cache), keyed by its
// Identity, so a registration or a sweep of an unchanged image costs a stat.
// It is safe for concurrent use, also by several processes sharing the
// directory.
type Detector struct {
	dir      string // "" keeps nothing
	readOnly bool   // use the cache, never write it
	lim      Limits
}

// NewDetector returns a Detector caching in dir (created if needed); with
// dir "" nothing is cached.
func NewDetector(dir string, lim Limits) (*Detector, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("inspect cache: %w", err)
		}
	}
	return &Detector{dir: dir, lim: lim}, nil
}

// NewReadOnlyDetector uses the cache in dir, if there is one, without ever
// writing to it: for tools run by other users than the daemon that owns
// it.
func NewReadOnlyDetector(dir string, lim Limits) *Detector {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = ""
	}
	return &Detector{dir: dir, readOnly: true, lim: lim}
}

// FileReport is a file's report and the identity it describes.
type FileReport struct {
	*Report
	Identity Identity `json:"identity"`
	// Cached is true when the report came from the cache.
	Cached bool `json:"cached"`
}

type cacheEntry struct {
	Identity Identity `json:"identity"`
	Report   *Report  `json:"report"`
}

// File opens the image file at path and inspects it, or recalls its
// report. Errors are those of opening and stat-ing the file, and ctx's.
// (syncd opens image files through its watch rules and calls Inspect.)
func (d *Detector) File(ctx context.Context, path string) (*FileReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return d.Inspect(ctx, f)
}

// Inspect inspects the open image file f, or recalls the report of its
// content.
func (d *Detector) Inspect(ctx context.Context, f *os.File) (*FileReport, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", f.Name())
	}
	id, keyed := identityOf(fi)
	if !keyed {
		id = Identity{Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano()}
	}
	if keyed && d.dir != "" {
		if rep, ok := d.lookup(id); ok {
			return &FileReport{Report: rep, Identity: id, Cached: true}, nil
		}
	}
	rep, err := Detect(ctx, f, fi.Size(), d.lim)
	if err != nil {
		return nil, err
	}
	// A file written to while it was read, or a detection cut short by the
	// clock (which depends on the machine's load), is not remembered.
	if keyed && d.dir != "" && !d.readOnly && !rep.TimedOut {
		if fi2, err := f.Stat(); err == nil {
			if id2, ok := identityOf(fi2); ok && id2 == id {
				_ = d.store(id, rep) // best effort: a cache that cannot be written only costs a re-read
			}
		}
	}
	return &FileReport{Report: rep, Identity: id}, nil
}

func (d *Detector) path(id Identity) string {
	sum := sha256.Sum256([]byte(strconv.FormatUint(id.Dev, 10) + ":" + strconv.FormatUint(id.Ino, 10)))
	return filepath.Join(d.dir, hex.EncodeToString(sum[:16])+".json")
}

func (d *Detector) lookup(id Identity) (*Report, bool) {
	b, err := os.ReadFile(d.path(id))
	if err != nil {
		return nil, false
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || e.Identity != id || e.Report == nil || e.Report.Version != Version {
		return nil, false
	}
	return e.Report, true
}

func (d *Detector) store(id Identity, rep *Report) error {
	b, err := json.Marshal(cacheEntry{Identity: id, Report: rep})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), d.path(id)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// Forget drops the cached report of the file described by fi.
func (d *Detector) Forget(fi fs.FileInfo) error {
	id, ok := identityOf(fi)
	if !ok || d.dir == "" || d.readOnly {
		return nil
	}
	if err := os.Remove(d.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
