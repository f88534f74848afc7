package jobs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/watch"
)

// A drop folder is a trust boundary: the people who can write to it may be
// more than the token should serve. Every file a job reads under a watch
// root is opened here, through the watcher's rules (watch.Tree: symlink
// policy, open-and-check identity) and the root's policy caps (owners,
// allow_public, allowed_members). See README "Who can do what through a drop
// folder".

// PolicyError is a file, or the metadata it asks for, refused by a watch
// root's policy. It names the file and the rule, and says what to do. It is
// permanent: the task is archived.
type PolicyError struct {
	Root string // the watch root's dir as configured
	Rule string // the config key: owners, allow_public, allowed_members, follow_symlinks
	File string // the file the refusal is about
	Msg  string // what was found, and what to do
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("%s refused by the %s rule of watch root %s: %s", e.File, e.Rule, e.Root, e.Msg)
}

// Permanent marks it for Classify.
func (e *PolicyError) Permanent() bool { return true }

// rootFiles holds the rules and caps of every root.
type rootFiles struct {
	roots  *watch.Roots
	err    error // why the roots are unusable (config validation prevents it)
	owners map[string]config.Owners
}

func newRootFiles(ws []config.Watch) rootFiles {
	rs, err := watch.NewRoots(WatchRoots(ws))
	f := rootFiles{roots: rs, err: err, owners: map[string]config.Owners{}}
	for _, w := range ws {
		if len(w.Owners) == 0 {
			continue
		}
		o, oerr := config.ParseOwners(w.Owners)
		if oerr != nil && f.err == nil {
			f.err = fmt.Errorf("watch root %s: owners: %w", w.Dir, oerr)
		}
		f.owners[w.Dir] = o
	}
	return f
}

// tree returns the rules of the root configured with dir.
func (c *Catalog) tree(dir string) (*watch.Tree, error) {
	if c.files.err != nil {
		return nil, permanent(c.files.err)
	}
	if t := c.files.roots.Find(dir); t != nil {
		return t, nil
	}
	return nil, permanent(fmt.Errorf("watch root %q is not in this node's configuration", dir))
}

// checkOwner applies the root's owners cap to an opened file.
func (c *Catalog) checkOwner(root, path string, fi fs.FileInfo) error {
	o, ok := c.files.owners[root]
	if !ok {
		return nil
	}
	uid, gid, known := watch.Owner(fi)
	if known && o.Allows(uid, gid) {
		return nil
	}
	return &PolicyError{Root: root, Rule: "owners", File: path, Msg: fmt.Sprintf(
		"it is owned by uid %d, gid %d, and this folder accepts only files owned by %s; "+
			"have an accepted owner put it there (or chown it), or add its owner to the folder's owners", uid, gid, o)}
}

// errImageGone is openImage's answer for a file that was removed or renamed
// away before its upload ran: nothing to upload, and nothing to fix (a
// renamed file is uploaded under its new name).
var errImageGone = errors.New("the image file was removed or renamed before it could be uploaded")

// openImage opens the image file of an upload task, only if it is still
// the file that settled (device, inode, size and mtime) and the root's rules
// and caps accept it. A file that changed returns (nil, nil): the watcher
// reports it again when it settles, under a new task id. A file that is gone
// returns errImageGone. The upload reads only through the returned file.
func (c *Catalog) openImage(p UploadPayload) (*os.File, error) {
	t, err := c.tree(p.Root)
	if err != nil {
		return nil, err
	}
	abs := t.AbsOf(p.RelPath)
	want := watch.FileID{Dev: p.Dev, Ino: p.Inode}
	if w, err := c.Root(p.Root); err == nil && w.Shared && want.Dev == 0 && want.Ino != 0 {
		// A shared root's tasks leave the device out of the identity (each
		// host numbers the mount its own way; see Catalog.identity): the
		// inode is compared on this host's device.
		want.Dev = t.Lstat(p.RelPath).ID().Dev
	}
	f, err := t.Open(p.RelPath, want)
	var le *watch.LinkError
	switch {
	case err == nil:
	case errors.Is(err, watch.ErrChanged):
		return nil, nil
	case errors.As(err, &le):
		return nil, &PolicyError{Root: p.Root, Rule: "follow_symlinks", File: abs, Msg: le.Error()}
	case errors.Is(err, fs.ErrNotExist):
		return nil, errImageGone
	default:
		return nil, permanent(fmt.Errorf("cannot read image file %s: %w (make it readable by syncd, then run `syncctl retry`)", abs, err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", abs, err)
	}
	if st.Size() != p.Size || st.ModTime().UnixNano() != p.MtimeNs {
		f.Close()
		return nil, nil
	}
	if err := c.checkOwner(p.Root, abs, st); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// metafileOpener opens the metafiles of root w for image.LoadChainWith and
// MetaFingerprint: through the link rules and the owners cap.
func (c *Catalog) metafileOpener(w config.Watch) image.Opener {
	return func(rel string) (*os.File, error) {
		t, err := c.tree(w.Dir)
		if err != nil {
			return nil, err
		}
		f, err := t.Open(rel, watch.FileID{})
		var le *watch.LinkError
		switch {
		case errors.As(err, &le):
			return nil, &PolicyError{Root: w.Dir, Rule: "follow_symlinks", File: t.AbsOf(rel), Msg: le.Error()}
		case err != nil:
			return nil, err
		}
		fi, err := f.Stat()
		if err == nil {
			err = c.checkOwner(w.Dir, t.AbsOf(rel), fi)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
}

// checkMetadataPolicy applies allow_public and allowed_members to the
// metadata the metafiles of image rel resolved to. Values the operator set
// in the config (defaults, public) are not the folder's writers' and pass.
func checkMetadataPolicy(w config.Watch, rel string, r *image.Resolved) error {
	fromConfig := func(src string) bool { return src == image.BuiltinSource || strings.HasPrefix(src, configSource(w)) }
	if !w.PublicAllowed() && r.Metadata.IsPublic && !fromConfig(r.Provenance[image.ProvIsPublic]) {
		src := r.Provenance[image.ProvIsPublic]
		return &PolicyError{Root: w.Dir, Rule: "allow_public", File: src, Msg: fmt.Sprintf(
			"it makes image %s public, and this folder has allow_public: false; remove \"is-public\" from it "+
				"(the operator can publish images of this folder by other means)", rel)}
	}
	if w.AllowedMembers != nil && !fromConfig(r.Provenance[image.ProvMembers]) {
		for _, m := range r.Metadata.Members {
			if !slices.Contains(w.AllowedMembers, m) {
				allowed := "nobody"
				if len(w.AllowedMembers) > 0 {
					allowed = strings.Join(w.AllowedMembers, ", ")
				}
				return &PolicyError{Root: w.Dir, Rule: "allowed_members", File: r.Provenance[image.ProvMembers], Msg: fmt.Sprintf(
					"it shares image %s with %s, and this folder may share images only with %s; remove that member, "+
						"or ask the operator to add it to allowed_members", rel, m, allowed)}
			}
		}
	}
	return nil
}

// configSource is how DesiredMetadata names the config's levels.
func configSource(w config.Watch) string { return "config watch entry " + w.Dir }
