package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/hibiken/asynq"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/location"
)

// FileFacts is what the watcher knows about an image file.
type FileFacts struct {
	Root    string
	RelPath string
	AbsPath string
	Size    int64
	ModTime time.Time
	Dev     uint64
	Inode   uint64
}

// Catalog maps watch roots and image files to remote objects, queues and
// task requests. It is the one place that knows the config's watch entries.
type Catalog struct {
	roots []config.Watch
	node  string
	files rootFiles // the watch rules and policy caps of each root (files.go)
}

// NewCatalog indexes the watch entries.
func NewCatalog(roots []config.Watch, node string) *Catalog {
	return &Catalog{roots: roots, node: node, files: newRootFiles(roots)}
}

// Roots returns the watch entries.
func (c *Catalog) Roots() []config.Watch { return c.roots }

// Root finds the watch entry configured with dir.
func (c *Catalog) Root(dir string) (config.Watch, error) {
	for _, w := range c.roots {
		if w.Dir == dir {
			return w, nil
		}
	}
	return config.Watch{}, permanent(fmt.Errorf("watch root %q is not in this node's configuration", dir))
}

// Ref names an image's remote object: <container>/<prefix>/<relPath>.
func (c *Catalog) Ref(rootDir, rel string) (ImageRef, error) {
	w, err := c.Root(rootDir)
	if err != nil {
		return ImageRef{}, err
	}
	loc := location.Join(w.Container, w.Prefix, rel)
	if err := loc.Validate(); err != nil {
		return ImageRef{}, permanent(fmt.Errorf("image %s: %w", rel, err))
	}
	return ImageRef{Root: w.Dir, RelPath: rel, Container: loc.Container, Object: loc.Object}, nil
}

// uploadQueue is this node's queue, or the shared one for shared roots.
func (c *Catalog) uploadQueue(w config.Watch) string {
	if w.Shared {
		return QueueSharedUpload
	}
	return UploadQueue(c.node)
}

// UploadRequest builds the upload task for a settled file.
func (c *Catalog) UploadRequest(f FileFacts, force bool) (Request, error) {
	ref, err := c.Ref(f.Root, f.RelPath)
	if err != nil {
		return Request{}, err
	}
	w, _ := c.Root(f.Root)
	p := UploadPayload{V: PayloadVersion, ImageRef: ref, Size: f.Size, MtimeNs: f.ModTime.UnixNano(), Dev: f.Dev, Inode: f.Inode, Force: force}
	return Request{
		Type: TypeUpload, ID: UploadTaskID(p), Queue: c.uploadQueue(w), Payload: p, Replace: force,
		Opts: []asynq.Option{asynq.Timeout(UploadTimeout(f.Size)), asynq.MaxRetry(12)},
	}, nil
}

// RegisterRequest builds the registration task for an image whose file is
// known; the id covers the file's identity and the metadata sources, so a
// metafile edit makes a new task while a repeated event does not.
func (c *Catalog) RegisterRequest(f FileFacts, objectHash, objectUUID, reason string, force bool) (Request, error) {
	ref, err := c.Ref(f.Root, f.RelPath)
	if err != nil {
		return Request{}, err
	}
	fp, err := c.MetaFingerprint(ref)
	if err != nil {
		return Request{}, err
	}
	p := RegisterPayload{V: PayloadVersion, ImageRef: ref, File: fileFingerprint(f), ObjectHash: objectHash, ObjectUUID: objectUUID, MetaFingerprint: fp, Force: force, Reason: reason}
	return Request{
		Type: TypeRegister, ID: RegisterTaskID(p), Queue: QueueDefault, Payload: p, Replace: force,
		Opts: []asynq.Option{asynq.Timeout(10 * time.Minute), asynq.MaxRetry(12)},
	}, nil
}

// PublishRequest builds the publish task following one registration.
func PublishRequest(ref ImageRef, imageID string, public bool, members []string, after string) Request {
	p := PublishPayload{V: PayloadVersion, ImageRef: ref, ImageID: imageID, Public: public, Members: members, After: after}
	return Request{
		Type: TypePublish, ID: PublishTaskID(p), Queue: QueueDefault, Payload: p,
		Opts: []asynq.Option{asynq.Timeout(5 * time.Minute), asynq.MaxRetry(12)},
	}
}

// UnregisterRequest builds the task that unregisters the image whose file
// was removed at removedAt.
func (c *Catalog) UnregisterRequest(rootDir, rel string, removedAt time.Time) (Request, error) {
	ref, err := c.Ref(rootDir, rel)
	if err != nil {
		return Request{}, err
	}
	p := UnregisterPayload{V: PayloadVersion, ImageRef: ref, RemovedAt: removedAt.UTC().Format(time.RFC3339Nano)}
	return Request{
		Type: TypeUnregister, ID: UnregisterTaskID(p), Queue: QueueDefault, Payload: p,
		Opts: []asynq.Option{asynq.Timeout(5 * time.Minute), asynq.MaxRetry(12)},
	}, nil
}

// MetaFingerprint hashes everything the desired metadata of ref is built
// from: the watch entry's defaults, public flag and policy caps, every
// _template.meta from the root down, and the image's own metafile. It reads
// the metafiles as the registration will (the root's rules and caps; an
// oversized one is hashed by its size, unread), and a file it cannot use is
// hashed as such, so the registration runs and reports it.
func (c *Catalog) MetaFingerprint(ref ImageRef) (string, error) {
	w, err := c.Root(ref.Root)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	defaults, _ := json.Marshal(w.Defaults)
	fmt.Fprintf(h, "defaults=%s;public=%v;prefix=%s;", defaults, w.Public, w.Prefix)
	fmt.Fprintf(h, "allow_public=%v;allowed_members=%q;owners=%q;links=%s;", w.PublicAllowed(), w.AllowedMembers, w.Owners, w.FollowSymlinks)
	paths, err := image.ChainPaths(ref.RelPath)
	if err != nil {
		fmt.Fprintf(h, "chain=%v;", err)
		return hex.EncodeToString(h.Sum(nil))[:24], nil
	}
	open := c.metafileOpener(w)
	for _, rel := range paths {
		fmt.Fprintf(h, "%s=", rel)
		hashMetafile(h, open, rel)
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// hashMetafile writes one metafile's content, or why it has none, to h.
func hashMetafile(h io.Writer, open image.Opener, rel string) {
	f, err := open(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprint(h, "absent;")
		return
	case err != nil:
		fmt.Fprintf(h, "unusable:%v;", err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil && fi.Size() > image.MaxMetafileSize {
		fmt.Fprintf(h, "oversized:%d;", fi.Size())
		return
	}
	b, err := io.ReadAll(io.LimitReader(f, image.MaxMetafileSize+1))
	if err != nil {
		fmt.Fprintf(h, "unreadable:%v;", err)
		return
	}
	fmt.Fprintf(h, "%d:", len(b))
	h.Write(b)
}

func fileFingerprint(f FileFacts) string {
	return fmt.Sprintf("%d:%d:%d:%d", f.Size, f.ModTime.UnixNano(), f.Dev, f.Inode)
}
