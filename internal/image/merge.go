package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Names of the metafiles beside images.
const (
	TemplateFile   = "_template.meta"
	MetafileSuffix = ".meta"
)

// BuiltinSource is the provenance of a value no metafile or config set.
const BuiltinSource = "built-in default"

// DetectedPrefix begins the provenance of a value detected in the disk image
// itself: "detected from partition 1 ext4 /etc/os-release".
const DetectedPrefix = "detected from "

// DetectedProperty is a property found in the disk image (see package
// inspect): the layer above the built-in defaults and below everything a
// person wrote.
type DetectedProperty struct {
	Key, Value string
	// Evidence is where it was found: "partition 1 ext4 /etc/os-release".
	Evidence string
}

// ResolveInput is everything the desired metadata of one image is built from.
type ResolveInput struct {
	// RelPath is the image's path relative to its watch root, '/'-separated.
	// It is the built-in name and the source of the placeholders.
	RelPath string
	// Date is the image file's mtime (or any fixed time): {{.Date}}. It is
	// passed in, never read from the clock, so the result is deterministic.
	Date time.Time
	// Detected are the properties found in the disk image, most important
	// first: when an image has more properties than Plankton stores, the
	// detected ones nobody overrode are left out from the last.
	Detected []DetectedProperty
	// Defaults is the watch entry's `defaults:` (see MetafileFromMap); nil
	// if there are none.
	Defaults *Metafile
	// Templates are the _template.meta files from the watch root down to the
	// image's directory (deeper wins); nil entries are skipped.
	Templates []*Metafile
	// PerImage is the image's own X.diskdump.meta; nil if there is none.
	PerImage *Metafile
}

// Resolved is the desired metadata of an image and where each value came from.
type Resolved struct {
	Metadata Metadata
	// Provenance maps "name", "disk-format", "container-format",
	// "is-public", "members" and "properties.<key>" to the Source of the
	// level that set the value (BuiltinSource for built-in defaults).
	Provenance map[string]string
	// Removed maps a property key to the Source that removed it, when a
	// lower level had set it.
	Removed map[string]string
	// Warnings of every level, lowest first, then of the merge itself.
	Warnings []Warning
}

// Provenance keys for the fields.
const (
	ProvName            = "name"
	ProvDiskFormat      = "disk-format"
	ProvContainerFormat = "container-format"
	ProvIsPublic        = "is-public"
	ProvMembers         = "members"
	provPropertyPrefix  = "properties."
)

// ProvProperty is the provenance key of a property.
func ProvProperty(key string) string { return provPropertyPrefix + key }

// Resolve merges the levels of in by precedence, lowest first: built-in
// defaults (disk-format diskdump, container-format bare, name = RelPath, not
// public, no members), what was detected in the disk image, config
// defaults, templates root to leaf, the per-image metafile. Fields are taken from the highest level that sets them;
// properties merge one by one, keys compared after NormalizeKey, and a
// property set to "" or null (or that expands to "") removes an inherited
// one; a level that sets members replaces the whole list. Placeholders are
// expanded with each image's own values. The result is not validated: call
// Validate (or Resolved.Validate) before any request.
func Resolve(in ResolveInput) (*Resolved, error) {
	ph := PlaceholdersFor(in.RelPath, in.Date)
	r := &Resolved{
		Metadata: Metadata{
			Name:            in.RelPath,
			DiskFormat:      DiskFormats[0],
			ContainerFormat: "bare",
			Properties:      map[string]string{},
		},
		Provenance: map[string]string{
			ProvName: BuiltinSource, ProvDiskFormat: BuiltinSource,
			ProvContainerFormat: BuiltinSource, ProvIsPublic: BuiltinSource,
		},
		Removed: map[string]string{},
	}
	// Detected values are data read from the image, not templates: they
	// are taken as they are, placeholders and all.
	for _, d := range in.Detected {
		if d.Value == "" {
			continue
		}
		key := NormalizeKey(d.Key)
		ev := d.Evidence
		if ev == "" {
			ev = "the disk image"
		}
		r.Metadata.Properties[key] = d.Value
		r.Provenance[ProvProperty(key)] = DetectedPrefix + ev
	}
	levels := make([]*Metafile, 0, len(in.Templates)+2)
	levels = append(levels, in.Defaults)
	levels = append(levels, in.Templates...)
	levels = append(levels, in.PerImage)
	for _, m := range levels {
		if m == nil {
			continue
		}
		if err := r.apply(m, ph); err != nil {
			return nil, err
		}
	}
	r.trimDetected(in.Detected)
	return r, nil
}

// trimDetected leaves out detected properties that nobody overrode, the
// least important first, while the image has more properties than Plankton
// stores: detection must never turn a registration that fits into one
// that does not.
func (r *Resolved) trimDetected(detected []DetectedProperty) {
	var dropped []string
	for i := len(detected) - 1; i >= 0 && len(r.Metadata.Properties) > MaxImageProperties; i-- {
		key := NormalizeKey(detected[i].Key)
		if !r.IsDetected(key) {
			continue
		}
		delete(r.Metadata.Properties, key)
		delete(r.Provenance, ProvProperty(key))
		dropped = append([]string{detected[i].Key}, dropped...)
	}
	if len(dropped) > 0 {
		r.Warnings = append(r.Warnings, Warning{File: "detected values", Field: fieldProperties,
			Msg: fmt.Sprintf("%s detected but left out: with them the image would have more than the %d properties Plankton stores",
				strings.Join(dropped, ", "), MaxImageProperties)})
	}
}

// IsDetected reports whether the property key (normalised) has its value
// from the disk image.
func (r *Resolved) IsDetected(key string) bool {
	return strings.HasPrefix(r.Provenance[ProvProperty(key)], DetectedPrefix)
}

func (r *Resolved) apply(m *Metafile, ph Placeholders) error {
	md := &r.Metadata
	r.Warnings = append(r.Warnings, m.Warnings...)
	if m.Name != nil {
		v, err := ExpandPlaceholders(*m.Name, ph)
		if err != nil {
			return &MetafileError{File: m.Source, Field: dashed(fieldName), Msg: err.Error(), Err: err}
		}
		md.Name, r.Provenance[ProvName] = v, m.Source
	}
	if m.DiskFormat != nil {
		md.DiskFormat, r.Provenance[ProvDiskFormat] = *m.DiskFormat, m.Source
	}
	if m.ContainerFormat != nil {
		md.ContainerFormat, r.Provenance[ProvContainerFormat] = *m.ContainerFormat, m.Source
	}
	if m.IsPublic != nil {
		md.IsPublic, r.Provenance[ProvIsPublic] = *m.IsPublic, m.Source
	}
	keys := make([]string, 0, len(m.Properties))
	for k := range m.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m.Properties[k]
		key := NormalizeKey(k) // already normalised by the parser; not by every caller
		val := ""
		if v != nil {
			var err error
			val, err = ExpandPlaceholders(*v, ph)
			if err != nil {
				return &MetafileError{File: m.Source, Field: provPropertyPrefix + k, Msg: err.Error(), Err: err}
			}
			if val == "" && *v != "" {
				r.Warnings = append(r.Warnings, Warning{File: m.Source, Field: provPropertyPrefix + k,
					Msg: fmt.Sprintf("%q expands to \"\" for this image; Plankton cannot store an empty value, so the property is removed", *v)})
			}
		}
		if val == "" {
			if _, inherited := md.Properties[key]; inherited {
				delete(md.Properties, key)
				delete(r.Provenance, ProvProperty(key))
				r.Removed[key] = m.Source
			}
			continue
		}
		md.Properties[key] = val
		r.Provenance[ProvProperty(key)] = m.Source
		delete(r.Removed, key)
	}
	if m.MembersSet {
		md.Members = make([]string, 0, len(m.Members))
		seen := map[string]bool{}
		for _, u := range m.Members {
			if seen[u] {
				r.Warnings = append(r.Warnings, Warning{File: m.Source, Field: ProvMembers, Msg: fmt.Sprintf("member %q listed twice; once is enough", u)})
				continue
			}
			seen[u] = true
			md.Members = append(md.Members, u)
		}
		r.Provenance[ProvMembers] = m.Source
	}
	return nil
}

// MaxChainDepth bounds how many directory levels of templates an image's
// metadata is built from: _template.meta in the watch root and in every
// directory down to the image's. A deeper image is refused rather than have
// a hostile tree make every registration read thousands of files.
const MaxChainDepth = 32

// Opener opens a metafile by its '/'-separated path relative to the watch
// root. A missing file is an error satisfying errors.Is(err, fs.ErrNotExist).
type Opener func(rel string) (*os.File, error)

// LoadChain reads the metafiles that shape the image at relPath ('/'-separated,
// relative to root): _template.meta in root and in every directory down to
// the image's, and <image>.meta beside it, opening them with os.Open. See
// LoadChainWith.
func LoadChain(root, relPath string) (templates []*Metafile, perImage *Metafile, err error) {
	return LoadChainWith(root, relPath, func(rel string) (*os.File, error) {
		return os.Open(filepath.Join(root, filepath.FromSlash(rel)))
	})
}

// ChainPaths lists the metafiles that shape the image at relPath, relative
// to the root and lowest precedence first: _template.meta from the root
// down, then <image>.meta. It refuses an image more than MaxChainDepth
// directories deep.
func ChainPaths(relPath string) ([]string, error) {
	if err := checkRelPath(relPath); err != nil {
		return nil, err
	}
	dirs := []string{""}
	if d := path.Dir(relPath); d != "." {
		parts := strings.Split(d, "/")
		if len(parts)+1 > MaxChainDepth {
			return nil, &MetafileError{File: relPath, Msg: fmt.Sprintf(
				"the image is %d directories below its watch root; templates are read from at most %d levels: move it higher up", len(parts), MaxChainDepth-1)}
		}
		for i := range parts {
			dirs = append(dirs, strings.Join(parts[:i+1], "/"))
		}
	}
	out := make([]string, 0, len(dirs)+1)
	for _, d := range dirs {
		out = append(out, path.Join(d, TemplateFile))
	}
	return append(out, relPath+MetafileSuffix), nil
}

// LoadChainWith reads the metafiles of ChainPaths(relPath), opening each
// with open. Missing files are skipped (the slice holds only the templates
// that exist; perImage is nil if absent). A file over MaxMetafileSize is
// refused from its size, without being read. Each Metafile's Source is its
// path, as filepath.Join(root, …).
func LoadChainWith(root, relPath string, open Opener) (templates []*Metafile, perImage *Metafile, err error) {
	paths, err := ChainPaths(relPath)
	if err != nil {
		return nil, nil, err
	}
	for i, rel := range paths {
		m, err := loadMetafile(filepath.Join(root, filepath.FromSlash(rel)), func() (*os.File, error) { return open(rel) })
		if err != nil {
			return nil, nil, err
		}
		switch {
		case m == nil:
		case i == len(paths)-1:
			perImage = m
		default:
			templates = append(templates, m)
		}
	}
	return templates, perImage, nil
}

func checkRelPath(rel string) error {
	if rel == "" || strings.HasPrefix(rel, "/") || path.Clean(rel) != rel || rel == "." ||
		rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("image path %q must be a clean path relative to the watch root", rel)
	}
	return nil
}

// loadMetafile reads and parses one metafile; (nil, nil) if it does not exist.
func loadMetafile(name string, open func() (*os.File, error)) (*Metafile, error) {
	f, err := open()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return nil, &MetafileError{File: name, Msg: "cannot read: " + errText(err), Err: err}
	case err != nil:
		return nil, err // a refusal by the opener, which says it all itself
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > MaxMetafileSize {
		return nil, &MetafileError{File: name, Msg: fmt.Sprintf("file is %d bytes, more than the %d a metafile may have; it was not read", fi.Size(), MaxMetafileSize)}
	}
	data, err := readLimited(f)
	if err != nil {
		return nil, &MetafileError{File: name, Msg: "cannot read: " + errText(err), Err: err}
	}
	return ParseMetafile(name, data)
}

// errText drops the path a *PathError repeats, since MetafileError names it.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// AffectedBy tells which images a change of the metafile at metaRelPath
// ('/'-separated, relative to the watch root) affects. A _template.meta
// affects every image under its directory: dirPrefix is that directory with
// a trailing '/' ("" for the root), so strings.HasPrefix(imageRelPath,
// dirPrefix) selects them. X.meta affects the image X: exactImage. ok is
// false when metaRelPath is not a metafile.
func AffectedBy(metaRelPath string) (dirPrefix, exactImage string, ok bool) {
	dir, base := path.Split(metaRelPath)
	switch {
	case base == TemplateFile:
		return dir, "", true
	case strings.HasSuffix(base, MetafileSuffix) && len(base) > len(MetafileSuffix):
		return "", strings.TrimSuffix(metaRelPath, MetafileSuffix), true
	}
	return "", "", false
}
