package jobs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/inspect"
	"github.com/imagesync/imagesync/internal/location"
)

// SweepDeps are what the republish sweep needs. The daemon's image:republish
// handler and syncctl (republish, images) build them the same way.
type SweepDeps struct {
	Catalog  *Catalog
	Session  *cloud.Session
	Enqueuer *Enqueuer // may be nil for dry runs
	Log      *zap.Logger
	// Now is the clock for metadata placeholders ({{.Date}}).
	Now func() time.Time
	// Scan overrides how image files are found (tests); nil means Scan.
	Scan func(context.Context) (*ScanResult, error)
	// Detector inspects (or recalls) each image's disk, whose detected
	// values are part of the desired metadata; nil inspects without a cache.
	Detector *inspect.Detector
	// Redis, if set, tells the images other nodes registered from their own
	// files from orphans (RegisteredByKey).
	Redis redis.UniversalClient
}

// SweepOptions select what the sweep does.
type SweepOptions struct {
	// Force re-registers every image, drifted or not.
	Force bool
	// DryRun compares and reports; nothing is enqueued.
	DryRun bool
	// Members reads every registered image's member list (for reporting),
	// not only where the desired state makes it matter.
	Members bool
	// List filters and sorts the report (syncctl images --filter --sort),
	// as image.ListOptions does a listing; Owner is ignored. An image not
	// registered yet is matched by its desired name and its file's size.
	List image.ListOptions
	// Scope limits the sweep to this node's own roots or to the shared
	// ones; SweepAllRoots (the default) sweeps every configured root.
	Scope SweepScope
}

// inScope reports whether the sweep covers root w.
func (o SweepOptions) inScope(w config.Watch) bool {
	switch o.Scope {
	case SweepNodeRoots:
		return !w.Shared
	case SweepSharedRoots:
		return w.Shared
	default:
		return true
	}
}

// SweepState is an image's state as the sweep found it.
type SweepState string

// Sweep states.
const (
	SweepInSync       SweepState = "in-sync"      // Plankton holds what the metafiles describe
	SweepDrifted      SweepState = "drifted"      // registered, but metadata, visibility or members differ
	SweepUnregistered SweepState = "unregistered" // the file has no registered image yet
	SweepError        SweepState = "error"        // desired metadata cannot be built (e.g. an invalid metafile)
	SweepOrphan       SweepState = "orphan"       // registered under a watch root's remote folder, but no local file
	SweepOtherNode    SweepState = "other-node"   // no local file: another node registered it from its own
)

// SweepImage is one image in a SweepReport.
type SweepImage struct {
	Root     string     `json:"root"`     // watch root as configured; "" for orphans and other-node
	RelPath  string     `json:"rel_path"` // "" for orphans and other-node
	Path     string     `json:"path"`     // local file; "" for orphans and other-node
	Location string     `json:"location"` // pithos://account/container/object
	ImageID  string     `json:"image_id"` // "" when unregistered
	Name     string     `json:"name"`     // registered name, else the desired one
	Public   bool       `json:"public"`   // registered visibility, else the desired one
	Members  []string   `json:"members"`  // registered members when read, else null
	State    SweepState `json:"state"`
	Changes  []string   `json:"changes"`        // what differs, for drifted images
	Error    string     `json:"error"`          // for state "error"
	Node     string     `json:"node,omitempty"` // for state "other-node": the node that registered it
	// Task is the task enqueued (or, in a dry run, that would be) for this
	// image, and Outcome what Enqueue said (enqueued, queued, done, failed;
	// "" in a dry run or when nothing was needed).
	Task    string `json:"task"`
	Outcome string `json:"outcome"`
}

// SweepReport is what one sweep found and did.
type SweepReport struct {
	StartedAt time.Time          `json:"started_at"`
	Seconds   float64            `json:"seconds"`
	DryRun    bool               `json:"dry_run"`
	Force     bool               `json:"force"`
	Scope     SweepScope         `json:"scope"` // "" (every root), "node" or "shared"
	User      string             `json:"user"`  // the account the images belong to
	Images    []SweepImage       `json:"images"`
	Problems  []string           `json:"problems"` // unreadable entries under the roots
	Counts    map[SweepState]int `json:"counts"`
	Enqueued  int                `json:"enqueued"` // tasks newly enqueued
}

// Sweep compares every image under the watch roots with what Plankton holds
// and enqueues a forced registration for each one that drifted (with
// opts.Force, for all), and an upload for each one not registered yet. The
// task ids are deterministic, so sweeps running at once on several daemons
// enqueue each piece of work once.
func Sweep(ctx context.Context, d SweepDeps, opts SweepOptions) (*SweepReport, error) {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Detector == nil {
		d.Detector = noCacheDetector()
	}
	if !opts.DryRun && d.Enqueuer == nil {
		return nil, errors.New("sweep: an Enqueuer is needed unless it is a dry run")
	}
	opts.List.Owner = ""
	if err := opts.List.Validate(); err != nil {
		return nil, &ListOptionsError{Err: err}
	}
	rep := &SweepReport{StartedAt: d.Now().UTC(), DryRun: opts.DryRun, Force: opts.Force, Scope: opts.Scope,
		Images: []SweepImage{}, Problems: []string{}, Counts: map[SweepState]int{}}
	var roots []config.Watch
	for _, w := range d.Catalog.Roots() {
		if opts.inScope(w) {
			roots = append(roots, w)
		}
	}
	scan := d.Scan
	if scan == nil {
		scan = func(ctx context.Context) (*ScanResult, error) { return Scan(ctx, roots) }
	}
	files, err := scan(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range files.Problems {
		if slices.ContainsFunc(roots, func(w config.Watch) bool { return w.Dir == p.Root }) {
			rep.Problems = append(rep.Problems, p.Error())
		}
	}
	files.Images = slices.DeleteFunc(files.Images, func(f FileFacts) bool {
		return !slices.ContainsFunc(roots, func(w config.Watch) bool { return w.Dir == f.Root })
	})
	st, err := d.Session.Get(ctx)
	if err != nil {
		return nil, err // the cloud's own message says what failed
	}
	rep.User = st.UserUUID
	registered, err := st.Images.ListDetail(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing registered images: %w", err)
	}
	byLoc := map[location.Location]*image.Image{}
	for i := range registered {
		img := registered[i]
		loc, err := location.Parse(img.Location)
		if err != nil || loc.Account != st.UserUUID {
			continue // not ours: shared with us, or a location we do not write
		}
		byLoc[loc] = img
	}

	seen := map[location.Location]bool{}
	// What each row's registration is, for --filter and --sort.
	var listed []*image.Image
	for _, f := range files.Images {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		si, loc := sweepOne(ctx, d, st, f, byLoc, opts)
		seen[loc] = true
		rep.Images = append(rep.Images, si)
		img := byLoc[loc]
		if img == nil {
			img = &image.Image{Name: si.Name, Size: f.Size}
		}
		listed = append(listed, img)
	}
	for _, o := range d.attribute(ctx, orphans(roots, byLoc, seen)) {
		rep.Images = append(rep.Images, o)
		loc, _ := location.Parse(o.Location)
		listed = append(listed, byLoc[loc])
	}
	rep.Images = filterSort(rep.Images, listed, opts.List)
	for i := range rep.Images {
		si := &rep.Images[i]
		rep.Counts[si.State]++
		if si.Outcome == string(Enqueued) {
			rep.Enqueued++
		}
	}
	rep.Seconds = d.Now().Sub(rep.StartedAt).Seconds()
	d.Log.Info("republish sweep done", zap.Bool("dry_run", opts.DryRun), zap.Bool("force", opts.Force), zap.String("scope", scopeName(opts.Scope)),
		zap.Int("images", len(rep.Images)), zap.Int("drifted", rep.Counts[SweepDrifted]),
		zap.Int("unregistered", rep.Counts[SweepUnregistered]), zap.Int("errors", rep.Counts[SweepError]),
		zap.Int("enqueued", rep.Enqueued))
	return rep, nil
}

// sweepOne compares one local image with its registration and acts on it.
func sweepOne(ctx context.Context, d SweepDeps, st *cloud.State, f FileFacts, byLoc map[location.Location]*image.Image, opts SweepOptions) (SweepImage, location.Location) {
	si := SweepImage{Root: f.Root, RelPath: f.RelPath, Path: f.AbsPath, Changes: []string{}}
	log := d.Log.With(zap.String("root", f.Root), zap.String("path", f.RelPath))
	ref, err := d.Catalog.Ref(f.Root, f.RelPath)
	if err != nil {
		si.State, si.Error = SweepError, err.Error()
		return si, location.Location{}
	}
	loc := location.Location{Account: st.UserUUID, Container: ref.Container, Object: ref.Object}
	si.Location = loc.String()
	var resolved *image.Resolved
	disk, err := d.Catalog.InspectImage(ctx, d.Detector, f)
	if err == nil {
		resolved, err = DesiredMetadata(d.Catalog, ref, f.ModTime, disk)
	}
	if err == nil {
		err = resolved.Validate()
	}
	if err != nil {
		si.State, si.Error = SweepError, err.Error()
		if img := byLoc[loc]; img != nil {
			si.ImageID, si.Name, si.Public = img.ID, img.Name, img.IsPublic
		}
		return si, loc
	}
	desired := resolved.Metadata
	img := byLoc[loc]
	if img == nil {
		si.State, si.Name, si.Public = SweepUnregistered, desired.Name, desired.IsPublic
		if opts.DryRun {
			if req, err := d.Catalog.UploadRequest(f, false); err == nil {
				si.Task = req.ID
			}
			return si, loc
		}
		si.Task, si.Outcome = enqueueUpload(ctx, d, f, opts, log)
		return si, loc
	}
	si.ImageID, si.Name, si.Public = img.ID, img.Name, img.IsPublic
	si.Changes = append(si.Changes, image.Diff(desired, img).Strings()...)
	if opts.Members || len(desired.Members) > 0 || desired.IsPublic != img.IsPublic {
		members, err := st.Images.ListMembers(ctx, img.ID)
		if err != nil {
			si.State, si.Error = SweepError, fmt.Sprintf("reading members of image %s: %v", img.ID, err)
			return si, loc
		}
		// The owner is in the read share of every registered image; it is
		// not a member.
		si.Members = image.OtherMembers(members, img.Owner)
		si.Changes = append(si.Changes, image.DescribeMembers(image.DiffMembers(image.OtherMembers(desired.Members, img.Owner), si.Members))...)
	}
	si.State = SweepInSync
	if len(si.Changes) > 0 {
		si.State = SweepDrifted
	}
	if si.State == SweepInSync && !opts.Force {
		return si, loc
	}
	req, err := d.Catalog.RegisterRequest(f, "", img.ID, "republish", true)
	if err != nil {
		si.State, si.Error = SweepError, err.Error()
		return si, loc
	}
	si.Task = req.ID
	if opts.DryRun {
		return si, loc
	}
	out, err := d.Enqueuer.Enqueue(ctx, req)
	if err != nil {
		log.Error("cannot enqueue re-registration", zap.Error(err))
		si.Outcome = "error: " + err.Error()
		return si, loc
	}
	si.Outcome = string(out)
	log.Info("re-registration queued", zap.String("state", string(si.State)), zap.Strings("changes", si.Changes),
		zap.String("task", req.ID), zap.String("outcome", si.Outcome))
	return si, loc
}

// ListOptionsError is an invalid --filter or --sort: a usage error.
type ListOptionsError struct{ Err error }

func (e *ListOptionsError) Error() string { return e.Err.Error() }
func (e *ListOptionsError) Unwrap() error { return e.Err }

// filterSort keeps the rows whose registration (listed, parallel to rows)
// passes o's filters, in o's order, ties in the sweep's own order. With no
// filter and no sort key it changes nothing.
func filterSort(rows []SweepImage, listed []*image.Image, o image.ListOptions) []SweepImage {
	if len(o.Filters) == 0 && o.SortKey == "" {
		return rows
	}
	idx := make([]int, 0, len(rows))
	for i := range rows {
		if o.Keep(listed[i]) {
			idx = append(idx, i)
		}
	}
	if o.SortKey != "" {
		slices.SortStableFunc(idx, func(a, b int) int { return o.Compare(listed[a], listed[b]) })
	}
	out := make([]SweepImage, 0, len(idx))
	for _, i := range idx {
		out = append(out, rows[i])
	}
	return out
}

// enqueueUpload queues the upload of an unregistered image. If that upload
// already completed (within retention), its registration never happened or
// was lost: queue that instead.
func enqueueUpload(ctx context.Context, d SweepDeps, f FileFacts, opts SweepOptions, log *zap.Logger) (task, outcome string) {
	req, err := d.Catalog.UploadRequest(f, opts.Force)
	if err != nil {
		return "", "error: " + err.Error()
	}
	out, err := d.Enqueuer.Enqueue(ctx, req)
	if err != nil {
		log.Error("cannot enqueue upload", zap.Error(err))
		return req.ID, "error: " + err.Error()
	}
	if out != Done {
		log.Info("unregistered image: upload queued", zap.String("task", req.ID), zap.String("outcome", string(out)))
		return req.ID, string(out)
	}
	reg, err := d.Catalog.RegisterRequest(f, "", "", "republish", true)
	if err != nil {
		return req.ID, "error: " + err.Error()
	}
	out, err = d.Enqueuer.Enqueue(ctx, reg)
	if err != nil {
		log.Error("cannot enqueue registration", zap.Error(err))
		return reg.ID, "error: " + err.Error()
	}
	log.Info("uploaded but unregistered image: registration queued", zap.String("task", reg.ID), zap.String("outcome", string(out)))
	return reg.ID, string(out)
}

// orphans are registered images under a watch root's remote folder whose
// local file is gone. The sweep reports them and leaves them alone.
func orphans(roots []config.Watch, byLoc map[location.Location]*image.Image, seen map[location.Location]bool) []SweepImage {
	var out []SweepImage
	for loc, img := range byLoc {
		if seen[loc] {
			continue
		}
		for _, w := range roots {
			prefix := strings.Trim(w.Prefix, "/")
			if loc.Container != w.Container || (prefix != "" && !strings.HasPrefix(loc.Object, prefix+"/")) {
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(loc.Object, prefix), "/")
			if !IsImageName(path.Base(rel), w.ImagePatterns()) {
				continue
			}
			out = append(out, SweepImage{
				Location: loc.String(), ImageID: img.ID, Name: img.Name, Public: img.IsPublic,
				State: SweepOrphan, Changes: []string{}, Error: "",
			})
			break
		}
	}
	slices.SortFunc(out, func(a, b SweepImage) int { return strings.Compare(a.Location, b.Location) })
	return out
}

// attribute marks the orphans another node registered from its own files
// as SweepOtherNode: their files are on that node, not gone. Without Redis,
// or when the record cannot be read, they stay orphans.
func (d SweepDeps) attribute(ctx context.Context, orphans []SweepImage) []SweepImage {
	if d.Redis == nil || len(orphans) == 0 {
		return orphans
	}
	locs := make([]string, len(orphans))
	for i, o := range orphans {
		locs[i] = o.Location
	}
	by, err := RegisteredBy(ctx, d.Redis, locs)
	if err != nil {
		d.Log.Warn("cannot tell which node registered the images with no file here; they are listed as orphans", zap.Error(err))
		return orphans
	}
	for i := range orphans {
		if n := by[orphans[i].Location]; n != "" && n != d.Catalog.Node() {
			orphans[i].State, orphans[i].Node = SweepOtherNode, n
		}
	}
	return orphans
}

// DesiredMetadata builds the metadata an image should be registered with,
// from the current metafiles: built-in defaults, what was detected in the
// disk image (detected; nil if it was not inspected), the watch entry's
// `public` and `defaults`, every _template.meta from the root down, then
// the image's own metafile. mtime is the image file's modification time
// ({{.Date}}), so every node computes the same result for the same file.
// The result is not validated (see image.Resolved.Validate).
func DesiredMetadata(c *Catalog, ref ImageRef, mtime time.Time, detected *inspect.Report) (*image.Resolved, error) {
	w, err := c.Root(ref.Root)
	if err != nil {
		return nil, err
	}
	var defaults *image.Metafile
	if len(w.Defaults) > 0 {
		defaults, err = image.MetafileFromMap(configSource(w)+": defaults", w.Defaults)
		if err != nil {
			return nil, permanent(err)
		}
	}
	if w.Public {
		// `public: true` is the entry's default visibility; `defaults:`,
		// templates and metafiles can still say otherwise.
		if defaults == nil {
			defaults = &image.Metafile{Source: configSource(w)}
		}
		if defaults.IsPublic == nil {
			t := true
			defaults.IsPublic = &t
		}
	}
	templates, perImage, err := image.LoadChainWith(ref.Root, ref.RelPath, c.metafileOpener(w))
	if err != nil {
		return nil, permanent(err)
	}
	r, err := image.Resolve(image.ResolveInput{RelPath: ref.RelPath, Date: mtime, Detected: DetectedLayer(detected),
		Defaults: defaults, Templates: templates, PerImage: perImage})
	if err != nil {
		return nil, permanent(err)
	}
	if err := checkMetadataPolicy(w, ref.RelPath, r); err != nil {
		return nil, err
	}
	return r, nil
}

func scopeName(s SweepScope) string {
	if s == SweepAllRoots {
		return "all"
	}
	return string(s)
}
