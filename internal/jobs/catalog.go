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

// Node is the name of the node this catalog describes.
func (c *Catalog) Node() string { return c.node }

// Root finds the watch entry configured with dir.
func (c *Catalog) Root(dir string) (config.Watch, error) {
	for _, w := range c.roots {
		if w.Dir == dir {
			return w, nil
		}
	}
	return config.Watch{}, permanent(fmt.Errorf("watch root %q is not in this node's configuration", dir))
}

// Ref names an image's remote object, <container>/<prefix>/<relPath>, and
// the node whose file it is ("" for a shared root).
func (c *Catalog) Ref(rootDir, rel string) (ImageRef, error) {
	w, err := c.Root(rootDir)
	if err != nil {
		return ImageRef{}, err
	}
	loc := location.Join(w.Container, w.Prefix, rel)
	if err := loc.Validate(); err != nil {
		return ImageRef{}, permanent(fmt.Errorf("image %s: %w", rel, err))
	}
	ref := ImageRef{Root: w.Dir, RelPath: rel, Container: loc.Container, Object: loc.Object}
	if w.Shared {
		ref.Shared = true
	} else {
		ref.Node = c.node
	}
	return ref, nil
}

// uploadQueue is this node's upload queue, or the shared one for shared roots.
func (c *Catalog) uploadQueue(w config.Watch) string {
	if w.Shared {
		return QueueSharedUpload
	}
	return UploadQueue(c.node)
}

// localQueue is where the other jobs that read root w's files go: this
// node's queue, or default (any node) for a shared root.
func (c *Catalog) localQueue(w config.Watch) string {
	if w.Shared {
		return QueueDefault
	}
	return NodeQueue(c.node)
}

// identity is what names f's content in task ids. On a shared root the
// device number is left out: every host mounting the storage numbers it
// differently, and the nodes must agree on the ids to do the work once.
func (c *Catalog) identity(f FileFacts) FileFacts {
	if w, err := c.Root(f.Root); err == nil && w.Shared {
		f.Dev = 0
	}
	return f
}

// UploadRequest builds the upload task for a settled file.
func (c *Catalog) UploadRequest(f FileFacts, force bool) (Request, error) {
	ref, err := c.Ref(f.Root, f.RelPath)
	if err != nil {
		return Request{}, err
	}
	w, _ := c.Root(f.Root)
	f = c.identity(f)
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
	w, _ := c.Root(f.Root)
	f = c.identity(f)
	p := RegisterPayload{V: PayloadVersion, ImageRef: ref, File: fileFingerprint(f), ObjectHash: objectHash, ObjectUUID: objectUUID, MetaFingerprint: fp, Force: force, Reason: reason}
	return Request{
		Type: TypeRegister, ID: RegisterTaskID(p), Queue: c.localQueue(w), Payload: p, Replace: force,
		Opts: taskOptions(TypeRegister),
	}, nil
}

// PublishRequest builds the publish task following one registration.
func PublishRequest(ref ImageRef, imageID string, public bool, members []string, after string) Request {
	p := PublishPayload{V: PayloadVersion, ImageRef: ref, ImageID: imageID, Public: public, Members: members, After: after}
	return Request{
		Type: TypePublish, ID: PublishTaskID(p), Queue: QueueDefault, Payload: p,
		Opts: taskOptions(TypePublish),
	}
}

// UnregisterRequest builds the task that unregisters the image whose file
// was removed at removedAt.
func (c *Catalog) UnregisterRequest(rootDir, rel string, removedAt time.Time) (Request, error) {
	ref, err := c.Ref(rootDir, rel)
	if err != nil {
		return Request{}, err
	}
	w, _ := c.Root(rootDir)
	p := UnregisterPayload{V: PayloadVersion, ImageRef: ref, RemovedAt: removedAt.UTC().Format(time.RFC3339Nano)}
	return Request{
		Type: TypeUnregister, ID: UnregisterTaskID(p), Queue: c.localQueue(w), Payload: p,
		Opts: taskOptions(TypeUnregister),
	}, nil
}

// SweepRequests builds the republish sweeps of one schedule tick that this
// node enqueues: one of its own roots on its queue, and one of the shared
// roots on default. Every node enqueues the shared one with the same id, so
// the shared roots are swept once per tick.
func (c *Catalog) SweepRequests(tick time.Time) []Request {
	var own, shared bool
	for _, w := range c.roots {
		own = own || !w.Shared
		shared = shared || w.Shared
	}
	var out []Request
	if own {
		out = append(out, SweepRequest(RepublishPayload{V: PayloadVersion, Tick: tick.UTC().Format(time.RFC3339Nano), Scope: SweepNodeRoots, Node: c.node}))
	}
	if shared {
		out = append(out, SweepRequest(RepublishPayload{V: PayloadVersion, Tick: tick.UTC().Format(time.RFC3339Nano), Scope: SweepSharedRoots}))
	}
	return out
}

// SweepRequest builds the task of one republish sweep, on the queue its
// scope belongs to.
func SweepRequest(p RepublishPayload) Request {
	q := QueueDefault
	if p.Scope == SweepNodeRoots {
		q = NodeQueue(p.Node)
	}
	return Request{Type: TypeRepublish, ID: RepublishTaskID(p), Queue: q, Payload: p, Opts: taskOptions(TypeRepublish)}
}

// taskOptions are the timeout and retries of the task types other than
// upload (whose timeout scales with the file; see UploadRequest).
func taskOptions(typ string) []asynq.Option {
	switch typ {
	case TypeRegister:
		return []asynq.Option{asynq.Timeout(10 * time.Minute), asynq.MaxRetry(12)}
	case TypeRepublish:
		// asynq's defaults: a sweep is cheap to repeat.
		return nil
	default:
		return []asynq.Option{asynq.Timeout(5 * time.Minute), asynq.MaxRetry(12)}
	}
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
