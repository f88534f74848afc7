package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/inspect"
	"github.com/imagesync/imagesync/internal/jobs"
)

// PlanField is one value of an image's desired metadata and the level it
// came from: "built-in default", a metafile or template path, "config watch
// entry DIR: defaults", or "detected from partition 1 ext4 /etc/os-release".
type PlanField struct {
	Field  string `json:"field"` // name, disk-format, container-format, is-public, members, properties.<key>
	Value  string `json:"value"`
	Source string `json:"source"`
}

// detector inspects image files for syncctl, through syncd's inspection
// cache (state_dir/inspect) when there is one, never writing to it.
func detector(cfg *config.Config) *inspect.Detector {
	return inspect.NewReadOnlyDetector(filepath.Join(cfg.StateDir, "inspect"), inspect.Limits{})
}

// planMetadata adds to pi the metadata the image would be registered with
// now, where each value comes from, and what would warn about or refuse
// it: the same computation as the register job's, detection included.
func planMetadata(ctx context.Context, catalog *jobs.Catalog, det *inspect.Detector, f jobs.FileFacts, pi *PlanImage) {
	ref, err := catalog.Ref(f.Root, f.RelPath)
	if err != nil {
		return // already the plan's error
	}
	disk, err := catalog.InspectImage(ctx, det, f)
	if err != nil {
		var pe *jobs.PolicyError
		if errors.As(err, &pe) {
			pi.Errors = append(pi.Errors, err.Error())
		} else {
			pi.Warnings = append(pi.Warnings, fmt.Sprintf("%s: not inspected: %v", f.AbsPath, err))
		}
	}
	r, err := jobs.DesiredMetadata(catalog, ref, f.ModTime, disk)
	if err == nil {
		err = r.Validate()
	}
	if err != nil {
		pi.Errors = append(pi.Errors, err.Error())
		return
	}
	pi.Metadata = metadataFields(r)
	for _, w := range r.Warnings {
		pi.Warnings = append(pi.Warnings, w.String())
	}
	errs, warns := catalog.DeployCheck(ref, f.AbsPath, r, disk)
	pi.Errors = append(pi.Errors, errs...)
	pi.Warnings = append(pi.Warnings, warns...)
}

// metadataFields lists the resolved metadata in a fixed order: the fields,
// then the properties by key.
func metadataFields(r *image.Resolved) []PlanField {
	md := r.Metadata
	out := []PlanField{
		{image.ProvName, md.Name, r.Provenance[image.ProvName]},
		{image.ProvDiskFormat, md.DiskFormat, r.Provenance[image.ProvDiskFormat]},
		{image.ProvContainerFormat, md.ContainerFormat, r.Provenance[image.ProvContainerFormat]},
		{image.ProvIsPublic, fmt.Sprint(md.IsPublic), r.Provenance[image.ProvIsPublic]},
	}
	if src, ok := r.Provenance[image.ProvMembers]; ok {
		out = append(out, PlanField{image.ProvMembers, strings.Join(md.Members, " "), src})
	}
	keys := make([]string, 0, len(md.Properties))
	for k := range md.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, PlanField{image.ProvProperty(k), md.Properties[k], r.Provenance[image.ProvProperty(k)]})
	}
	return out
}

// renderPlanNotes lists each image's errors and warnings and, with
// explain, its metadata and where each value comes from.
func renderPlanNotes(buf *bytes.Buffer, doc PlanDoc, explain bool) {
	var problems bytes.Buffer
	for _, im := range doc.Images {
		for _, e := range im.Errors {
			fmt.Fprintf(&problems, "  %s: would be refused: %s\n", escapeText(im.Location), escapeText(e))
		}
		for _, w := range im.Warnings {
			fmt.Fprintf(&problems, "  %s: warning: %s\n", escapeText(im.Location), escapeText(w))
		}
	}
	if problems.Len() > 0 {
		fmt.Fprintln(buf, "\nPROBLEMS")
		buf.Write(problems.Bytes())
	}
	if !explain {
		return
	}
	for _, im := range doc.Images {
		if len(im.Metadata) == 0 {
			continue
		}
		fmt.Fprintf(buf, "\n%s  (%s)\n", escapeText(im.Location), escapeText(im.RelPath))
		t := newTable(buf)
		for _, f := range im.Metadata {
			name := f.Field
			if k, ok := strings.CutPrefix(name, "properties."); ok {
				name = "property " + k
			}
			t.row("  "+name, orDash(f.Value), f.Source)
		}
		t.flush()
	}
}
