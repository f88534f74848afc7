package ctl

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/jobs"
)

// `republish --json` prints a jobs.SweepReport:
//
//	{ "started_at": "…", "seconds": 0.4, "dry_run": true, "force": false,
//	  "scope": "" (every root of this configuration) | "node" | "shared",
//	  "user": "<account uuid>",
//	  "images": [{"root", "rel_path", "path", "location": "pithos://…", "image_id",
//	              "name", "public", "members": [..] | null,
//	              "state": "in-sync"|"drifted"|"unregistered"|"error"|"orphan"|"other-node",
//	              "changes": ["…"], "error": "", "node": "<for other-node>",
//	              "task": "register:…", "outcome": ""}],
//	  "problems": ["<unreadable path>: <why>"],
//	  "counts": {"in-sync": 3, "drifted": 1, …},
//	  "enqueued": 1 }
//
// `images --json` prints an ImagesDoc: the same findings without what only
// a republish has (dry_run, force, enqueued, and each image's task and
// outcome).

// ImagesDoc is `images --json`:
//
//	{ "user": "<account uuid>",
//	  "images": [{"root", "rel_path", "path", "location", "image_id", "name", "public",
//	              "members": [..] | null, "state", "changes": ["…"], "error": "", "node"}],
//	  "problems": ["…"], "counts": {"in-sync": 3, …} }
type ImagesDoc struct {
	User     string                  `json:"user"`
	Images   []ImageRow              `json:"images"`
	Problems []string                `json:"problems"`
	Counts   map[jobs.SweepState]int `json:"counts"`
}

// ImageRow is one image of an ImagesDoc (see jobs.SweepImage).
type ImageRow struct {
	Root     string          `json:"root"`
	RelPath  string          `json:"rel_path"`
	Path     string          `json:"path"`
	Location string          `json:"location"`
	ImageID  string          `json:"image_id"`
	Name     string          `json:"name"`
	Public   bool            `json:"public"`
	Members  []string        `json:"members"`
	State    jobs.SweepState `json:"state"`
	Changes  []string        `json:"changes"`
	Error    string          `json:"error"`
	Node     string          `json:"node,omitempty"`
}

func imagesDoc(rep *jobs.SweepReport) ImagesDoc {
	doc := ImagesDoc{User: rep.User, Images: make([]ImageRow, len(rep.Images)), Problems: rep.Problems, Counts: rep.Counts}
	for i, im := range rep.Images {
		doc.Images[i] = ImageRow{Root: im.Root, RelPath: im.RelPath, Path: im.Path, Location: im.Location, ImageID: im.ImageID,
			Name: im.Name, Public: im.Public, Members: im.Members, State: im.State, Changes: im.Changes, Error: im.Error, Node: im.Node}
	}
	return doc
}

func (a *app) republishCommand() *cobra.Command {
	var dryRun, force bool
	cmd := &cobra.Command{
		Use:   "republish",
		Short: "Re-register every image whose registration drifted from its metafiles",
		Long: `Run the republish sweep now (syncd also runs it on schedule.republish): for
every image under the watch roots, build the desired metadata from the current
templates and metafiles, compare it with what Plankton holds, and queue a
re-registration (followed by publishing) for every image that differs. Images
not registered yet get their upload queued. --force re-registers every image;
--dry-run only reports.

The sweep runs here, so this host needs the watch roots and the cloud token.`,
		Example: "  syncctl republish --dry-run\n  syncctl republish --force",
		Args:    cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			rep, err := a.sweep(cmd, jobs.SweepOptions{DryRun: dryRun, Force: force})
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.emitJSON(rep); err != nil {
					return err
				}
			} else if err := a.writeOut(renderSweep(rep)); err != nil {
				return err
			}
			if n := failedImages(rep); n > 0 {
				return failed(fmt.Errorf("%d image(s) could not be compared or queued; see above", n))
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "report what would be re-registered; change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "re-register every image, drifted or not")
	return cmd
}

func (a *app) imagesCommand() *cobra.Command {
	var filters []string
	var sortBy string
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Registered images under the watch roots and whether they are in sync",
		Long: `List the images under the watch roots with their registration: image id,
name, visibility, members, and whether Plankton holds what the templates and
metafiles describe ("in-sync"), differs ("drifted", with what differs), has no
registration yet ("unregistered"), holds an image whose local file is gone
("orphan"), or one another node registered from its own files ("other-node").
Nothing is changed.

--filter KEY=VALUE (repeatable) keeps the images whose registration matches,
with Plankton's list filters: ` + strings.Join(image.ListFilters(), ", ") + `
(exact matches; status case-insensitively; sizes in bytes, inclusive). An
image not registered yet has its desired name and its file's size, and no
status or formats. --sort KEY[:asc|desc] orders by one of Plankton's sort
keys: ` + strings.Join(image.SortKeys, ", ") + `.`,
		Example: "  syncctl images --filter status=available --sort size:desc\n  syncctl images --filter name=debian-12 --json",
		Args:    cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			list, err := parseListFlags(filters, sortBy)
			if err != nil {
				return err
			}
			rep, err := a.sweep(cmd, jobs.SweepOptions{DryRun: true, Members: true, List: list})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.emitJSON(imagesDoc(rep))
			}
			return a.writeOut(renderImages(rep))
		}),
	}
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "KEY=VALUE: keep images whose registration matches (repeatable)")
	cmd.Flags().StringVar(&sortBy, "sort", "", "KEY[:asc|desc]: order by this registration field")
	return cmd
}

// parseListFlags turns --filter and --sort into image.ListOptions, checked
// as Plankton checks them; a bad one is a usage error.
func parseListFlags(filters []string, sortBy string) (image.ListOptions, error) {
	o := image.ListOptions{}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return o, usageErr("--filter %q: want KEY=VALUE", f)
		}
		if o.Filters == nil {
			o.Filters = map[string]string{}
		}
		o.Filters[strings.TrimSpace(k)] = v
	}
	if sortBy != "" {
		key, dir, _ := strings.Cut(sortBy, ":")
		o.SortKey, o.SortDir = key, dir
	}
	if err := o.Validate(); err != nil {
		return o, usageErr("%v", err)
	}
	return o, nil
}

// sweep runs jobs.Sweep with this configuration.
func (a *app) sweep(cmd *cobra.Command, opts jobs.SweepOptions) (*jobs.SweepReport, error) {
	cfg, session, err := a.session(cmd)
	if err != nil {
		return nil, err
	}
	if len(cfg.Watch) == 0 {
		return nil, fmt.Errorf("no watch roots configured (watch: in %s)", orDash(cfg.Source))
	}
	deps := jobs.SweepDeps{Catalog: jobs.NewCatalog(cfg.Watch, cfg.Node), Session: session, Detector: detector(cfg)}
	// A dry run needs Redis only to tell the images other nodes registered
	// from orphans.
	conn, redisErr := a.redis(cmd)
	switch {
	case redisErr == nil:
		deps.Redis = conn.Client
		if !opts.DryRun {
			deps.Enqueuer = jobs.NewEnqueuer(conn.Client, cfg.Node)
		}
	case !opts.DryRun:
		return nil, redisErr
	}
	rep, err := jobs.Sweep(cmd.Context(), deps, opts)
	if err != nil {
		if jobs.Classify(err) == jobs.Unauthorized {
			return nil, fmt.Errorf("%w (check cloud.token / cloud.token_file / SYNCD_TOKEN)", err)
		}
		return nil, err
	}
	if redisErr != nil && rep.Counts[jobs.SweepOrphan] > 0 {
		fmt.Fprintf(a.stderr, "syncctl: note: Redis not reached (%s): the orphans may include images other nodes registered from their own files\n",
			escapeText(redisErr.Error()))
	}
	return rep, nil
}

func failedImages(rep *jobs.SweepReport) int {
	n := 0
	for _, im := range rep.Images {
		if im.State == jobs.SweepError || strings.HasPrefix(im.Outcome, "error") {
			n++
		}
	}
	return n
}

func imageLabel(im jobs.SweepImage) string {
	if im.RelPath != "" {
		return im.RelPath
	}
	return im.Location
}

func renderSweep(rep *jobs.SweepReport) []byte {
	var buf bytes.Buffer
	if len(rep.Images) == 0 {
		fmt.Fprintln(&buf, "No images under the watch roots.")
	} else {
		t := newTable(&buf, "IMAGE", "STATE", "IMAGE ID", "ACTION", "WHAT DIFFERS")
		for _, im := range rep.Images {
			action := "-"
			switch {
			case im.Task != "" && rep.DryRun:
				action = "would queue " + im.Task
			case im.Task != "":
				action = im.Outcome + " " + im.Task
			}
			what := strings.Join(im.Changes, "; ")
			if im.Error != "" {
				what = im.Error
			}
			t.row(imageLabel(im), string(im.State), orDash(im.ImageID), action, orDash(oneLine(what)))
		}
		t.flush()
	}
	writeProblems(&buf, rep)
	fmt.Fprintf(&buf, "\n%s", sweepSummary(rep))
	switch {
	case rep.DryRun:
		fmt.Fprintln(&buf, " Dry run: nothing was queued.")
	default:
		fmt.Fprintf(&buf, " %d task(s) queued.\n", rep.Enqueued)
	}
	return buf.Bytes()
}

func renderImages(rep *jobs.SweepReport) []byte {
	var buf bytes.Buffer
	if len(rep.Images) == 0 {
		fmt.Fprintln(&buf, "No images under the watch roots.")
	} else {
		t := newTable(&buf, "IMAGE", "IMAGE ID", "NAME", "PUBLIC", "MEMBERS", "STATE", "WHAT DIFFERS")
		for _, im := range rep.Images {
			public := "no"
			if im.Public {
				public = "yes"
			}
			members := "-"
			if len(im.Members) > 0 {
				members = strings.Join(im.Members, ",")
			}
			what := strings.Join(im.Changes, "; ")
			if im.Error != "" {
				what = im.Error
			}
			switch im.State {
			case jobs.SweepOrphan:
				what = "the local file is gone; the registration is left as it is"
			case jobs.SweepOtherNode:
				what = "registered by node " + im.Node + ", which has its file"
			}
			t.row(imageLabel(im), orDash(im.ImageID), orDash(im.Name), public, members, string(im.State), orDash(oneLine(what)))
		}
		t.flush()
	}
	writeProblems(&buf, rep)
	fmt.Fprintf(&buf, "\n%s\n", sweepSummary(rep))
	return buf.Bytes()
}

func writeProblems(buf *bytes.Buffer, rep *jobs.SweepReport) {
	for _, p := range rep.Problems {
		fmt.Fprintf(buf, "cannot read %s\n", escapeText(p))
	}
}

func sweepSummary(rep *jobs.SweepReport) string {
	var parts []string
	for _, s := range []jobs.SweepState{jobs.SweepInSync, jobs.SweepDrifted, jobs.SweepUnregistered, jobs.SweepOrphan, jobs.SweepOtherNode, jobs.SweepError} {
		if n := rep.Counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	if len(parts) == 0 {
		return "0 images."
	}
	return fmt.Sprintf("%d image(s): %s.", len(rep.Images), strings.Join(parts, ", "))
}
