package ctl

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imagesync/imagesync/internal/inspect"
)

// imageExtensions mark an argument of `syncctl inspect` as a disk image
// even when no such file exists (then it is an error, not a task lookup).
var imageExtensions = []string{".diskdump", ".extdump", ".ntfsdump", ".img", ".raw", ".dd", ".bin", ".iso"}

// isImageArg tells `syncctl inspect FILE` from `syncctl inspect ID`: task
// ids (upload:3f2a…) have no path separator and no image extension, and
// name no file.
func isImageArg(arg string) bool {
	if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
		return true
	}
	if strings.ContainsRune(arg, '/') || strings.ContainsRune(arg, filepath.Separator) {
		return true
	}
	return slices.Contains(imageExtensions, strings.ToLower(filepath.Ext(arg)))
}

// InspectFileDoc is `inspect FILE --json`: what was detected in a disk
// image and the evidence, and whether snf-image could deploy it as
// detected.
//
//	{ "file": "/abs/path", "version": 1, "size": N,
//	  "partition_table": "msdos"|"gpt"|"", "table_evidence": "…",
//	  "partitions": [{"number", "primary", "start", "size", "type", "type_name",
//	                  "bootable", "name", "extended", "filesystem", "evidence"}],
//	  "properties": {"OSFAMILY": "linux", …}, "evidence": {"OSFAMILY": "partition 1 ext4: …", …},
//	  "notes": ["…"], "complete": true, "bytes_read": N, "seconds": 0.001,
//	  "deployable": true, "problems": [{"property", "error", "message", "fix"}] }
type InspectFileDoc struct {
	File string `json:"file"`
	*inspect.Report
	// Deployable: snf-image could deploy the image with the detected
	// OSFAMILY and ROOT_PARTITION alone (metafiles can still add them).
	Deployable bool            `json:"deployable"`
	Problems   []DeployProblem `json:"problems"`
}

// DeployProblem is one inspect.Finding.
type DeployProblem struct {
	Property string `json:"property"`
	Error    bool   `json:"error"`
	Message  string `json:"message"`
	Fix      string `json:"fix"`
}

// inspectImage runs `syncctl inspect FILE`: no configuration, Redis or
// cloud is needed, and nothing is cached.
func (a *app) inspectImage(cmd *cobra.Command, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	d, err := inspect.NewDetector("", inspect.Limits{})
	if err != nil {
		return err
	}
	fr, err := d.File(cmd.Context(), abs)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	doc := InspectFileDoc{File: abs, Report: fr.Report, Problems: []DeployProblem{}}
	for _, f := range inspect.Check(fr.Properties[inspect.OSFamily], fr.Properties[inspect.RootPartition], fr.Report) {
		doc.Problems = append(doc.Problems, DeployProblem{Property: f.Property, Error: f.Error, Message: f.Msg, Fix: f.Fix})
	}
	doc.Deployable = len(doc.Problems) == 0
	if a.jsonOut {
		return a.emitJSON(doc)
	}
	return a.writeOut(renderInspectFile(doc))
}

func renderInspectFile(doc InspectFileDoc) []byte {
	var buf bytes.Buffer
	rep := doc.Report
	t := newTable(&buf)
	t.row("image", fmt.Sprintf("%s (%s)", doc.File, bytesHuman(rep.Size)))
	table := rep.TableEvidence
	if rep.PartitionTable != "" {
		table = rep.PartitionTable + ": " + rep.TableEvidence
	}
	t.row("partition table", table)
	t.flush()

	if len(rep.Partitions) > 0 {
		fmt.Fprintln(&buf)
		pt := newTable(&buf, "PART", "START", "SIZE", "TYPE", "FILESYSTEM", "EVIDENCE")
		for _, p := range rep.Partitions {
			num := fmt.Sprint(p.Number)
			switch {
			case p.Number == 0:
				num = "disk"
			case !p.Primary:
				num += " (logical)"
			}
			typ := strings.TrimSpace(p.Type + " " + p.TypeName)
			if p.Number == 0 {
				typ = "-"
			}
			if p.Bootable {
				typ += " (boot)"
			}
			if p.Name != "" {
				typ += fmt.Sprintf(" %q", p.Name)
			}
			pt.row(num, bytesHuman(p.Start), bytesHuman(p.Size), typ, orDash(p.Filesystem), orDash(p.Evidence))
		}
		pt.flush()
	}

	fmt.Fprintln(&buf)
	if len(rep.Properties) == 0 {
		fmt.Fprintln(&buf, "Nothing detected.")
	} else {
		fmt.Fprintln(&buf, "DETECTED")
		dt := newTable(&buf)
		for _, k := range rep.SortedProperties() {
			dt.row("  "+k, rep.Properties[k], rep.Evidence[k])
		}
		dt.flush()
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(&buf, "\nNOTES")
		for _, n := range rep.Notes {
			fmt.Fprintf(&buf, "  %s\n", escapeText(n))
		}
	}
	fmt.Fprintln(&buf)
	if doc.Deployable {
		fmt.Fprintln(&buf, "snf-image: deployable as detected (OSFAMILY and ROOT_PARTITION found and consistent with the disk).")
	} else {
		fmt.Fprintln(&buf, "snf-image: not deployable as detected; a metafile, template or the watch entry's defaults can supply what is missing:")
		for _, p := range doc.Problems {
			fmt.Fprintf(&buf, "  %s; to fix: %s\n", escapeText(p.Message), escapeText(p.Fix))
		}
	}
	fmt.Fprintf(&buf, "Read %s of the image in %.1f ms.\n", bytesHuman(rep.BytesRead), rep.Seconds*1000)
	return buf.Bytes()
}
