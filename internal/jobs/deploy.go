package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/inspect"
)

// DetectedLayer turns a detection report into the metadata layer it is,
// most important property first (see image.ResolveInput.Detected). A nil
// report is no layer.
func DetectedLayer(rep *inspect.Report) []image.DetectedProperty {
	if rep == nil {
		return nil
	}
	out := make([]image.DetectedProperty, 0, len(rep.Properties))
	for _, k := range rep.SortedProperties() {
		out = append(out, image.DetectedProperty{Key: k, Value: rep.Properties[k], Evidence: rep.Evidence[k]})
	}
	return out
}

// DeployCheck checks whether snf-image could deploy the diskdump image file
// (its path) registered as r describes, on the disk rep describes (nil:
// not inspected). errs contradict the disk and are always refused; warns
// (a missing OSFAMILY or ROOT_PARTITION, an unknown family) are refused
// only under require_deployable. Each message names the file, where the
// value came from and what to change where. Other disk formats are not
// checked: extdump and ntfsdump describe themselves.
func DeployCheck(file string, r *image.Resolved, rep *inspect.Report) (errs, warns []string) {
	if r.Metadata.DiskFormat != image.DiskFormats[0] {
		return nil, nil
	}
	fam := r.Metadata.Properties[image.NormalizeKey(inspect.OSFamily)]
	root := r.Metadata.Properties[image.NormalizeKey(inspect.RootPartition)]
	for _, f := range inspect.Check(fam, root, rep) {
		key := image.NormalizeKey(f.Property)
		src := r.Provenance[image.ProvProperty(key)]
		var b strings.Builder
		b.WriteString(file + ": " + f.Msg)
		if src != "" {
			fmt.Fprintf(&b, " [%s %s]", f.Property, sourcePhrase(src))
		}
		fmt.Fprintf(&b, "; to fix: %s, in %s", f.Fix, fixWhere(file, src))
		if f.Error {
			errs = append(errs, b.String())
		} else {
			warns = append(warns, b.String())
		}
	}
	return errs, warns
}

func sourcePhrase(src string) string {
	if strings.HasPrefix(src, image.DetectedPrefix) {
		return src
	}
	return "set in " + src
}

// fixWhere is where a person changes a value: the metafile or config that
// set it, or else the image's own metafile.
func fixWhere(file, src string) string {
	if src == "" || src == image.BuiltinSource || strings.HasPrefix(src, image.DetectedPrefix) {
		return file + image.MetafileSuffix + " (or a " + image.TemplateFile + " above it, or the watch entry's defaults)"
	}
	return src
}

// DeployCheck applies the watch entry's require_deployable to DeployCheck:
// under it, the warnings are refused too.
func (c *Catalog) DeployCheck(ref ImageRef, file string, r *image.Resolved, rep *inspect.Report) (errs, warns []string) {
	errs, warns = DeployCheck(file, r, rep)
	if w, err := c.Root(ref.Root); err == nil && w.RequireDeployable {
		for _, wn := range warns {
			errs = append(errs, wn+" (refused: the watch entry sets require_deployable)")
		}
		warns = nil
	}
	return errs, warns
}

// DeployError is a registration refused because snf-image could not deploy
// the image: each problem names the file, the value and the fix.
type DeployError struct {
	Problems []string
}

func (e *DeployError) Error() string {
	return "not deployable by snf-image: " + strings.Join(e.Problems, "; ")
}

// DeployWarningsKey is the Redis hash of the deployability warnings of the
// images registered last with one: field = the image's remote location,
// value = a DeployWarning in JSON. A registration without warnings clears
// its image's entry, and so does unregistering it.
const DeployWarningsKey = "imagesync:deploy-warnings"

// DeployWarning is an image registered although snf-image could not deploy
// it as it is.
type DeployWarning struct {
	Location string    `json:"location"`
	Path     string    `json:"path"`
	Warnings []string  `json:"warnings"`
	At       time.Time `json:"at"`
	Task     string    `json:"task"`
}

// recordDeployWarnings keeps (or, with none, clears) the image's warnings
// for syncctl status. Best effort: the registration is done either way.
func recordDeployWarnings(ctx context.Context, rdb redis.Cmdable, ref ImageRef, path, task string, warns []string) error {
	if rdb == nil {
		return nil
	}
	if len(warns) == 0 {
		return rdb.HDel(ctx, DeployWarningsKey, ref.Location()).Err()
	}
	b, err := json.Marshal(DeployWarning{Location: ref.Location(), Path: path, Warnings: warns, At: time.Now().UTC(), Task: task})
	if err != nil {
		return err
	}
	return rdb.HSet(ctx, DeployWarningsKey, ref.Location(), b).Err()
}

// ReadDeployWarnings lists the images registered with deployability
// warnings, by path.
func ReadDeployWarnings(ctx context.Context, rdb redis.UniversalClient) ([]DeployWarning, error) {
	m, err := rdb.HGetAll(ctx, DeployWarningsKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading %s: %w", DeployWarningsKey, err)
	}
	out := make([]DeployWarning, 0, len(m))
	for loc, v := range m {
		var w DeployWarning
		if json.Unmarshal([]byte(v), &w) != nil {
			w = DeployWarning{Location: loc, Warnings: []string{"(unreadable entry)"}}
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Location < out[j].Location
	})
	return out, nil
}

// errImageChanged: the image file is no longer the content the task (or
// the scan) saw; its new content gets its own upload and registration.
var errImageChanged = errors.New("the image file changed since it was seen")

// InspectImage inspects the image file f describes, opened through its
// root's rules as its upload opens it (symlink policy, owners, the same
// device, inode, size and mtime), or recalls the report of that content.
// A file that is gone is errImageGone; one that changed, errImageChanged.
func (c *Catalog) InspectImage(ctx context.Context, d *inspect.Detector, f FileFacts) (*inspect.Report, error) {
	file, err := c.openImage(UploadPayload{ImageRef: ImageRef{Root: f.Root, RelPath: f.RelPath},
		Size: f.Size, MtimeNs: f.ModTime.UnixNano(), Dev: f.Dev, Inode: f.Inode})
	if err != nil {
		return nil, err
	}
	if file == nil {
		return nil, errImageChanged
	}
	defer file.Close()
	fr, err := d.Inspect(ctx, file)
	if err != nil {
		return nil, err
	}
	return fr.Report, nil
}

// factsOfFingerprint rebuilds the facts a register task was made for from
// its file fingerprint ("size:mtime_ns:dev:inode", see fileFingerprint).
func factsOfFingerprint(ref ImageRef, fp string) (FileFacts, error) {
	parts := strings.Split(fp, ":")
	if len(parts) != 4 {
		return FileFacts{}, fmt.Errorf("malformed file fingerprint %q", fp)
	}
	size, err1 := strconv.ParseInt(parts[0], 10, 64)
	mtime, err2 := strconv.ParseInt(parts[1], 10, 64)
	dev, err3 := strconv.ParseUint(parts[2], 10, 64)
	ino, err4 := strconv.ParseUint(parts[3], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return FileFacts{}, fmt.Errorf("malformed file fingerprint %q: %w", fp, err)
	}
	return FileFacts{Root: ref.Root, RelPath: ref.RelPath, Size: size, ModTime: time.Unix(0, mtime), Dev: dev, Inode: ino}, nil
}

// noCacheDetector inspects without remembering: for callers that were given
// no Detector.
func noCacheDetector() *inspect.Detector {
	d, _ := inspect.NewDetector("", inspect.Limits{}) // cannot fail without a directory
	return d
}
