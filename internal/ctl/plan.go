package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/imagesync/imagesync/internal/jobs"
)

// Plan actions: what the watcher would do with an image now.
const (
	ActionUpload   = "upload"   // new or changed file: would upload (then register)
	ActionRegister = "register" // uploaded, but templates or metafiles changed: would re-register
	ActionNone     = "none"     // up to date
	ActionQueued   = "queued"   // its task is already waiting or running
	ActionFailed   = "failed"   // its task failed permanently; `syncctl retry` after fixing the cause
	ActionError    = "error"    // the image cannot be planned (e.g. an unreadable metafile)
)

// Task statuses in a plan.
const (
	TaskNew    = "new"    // no such task: the work was never done (or its record expired)
	TaskQueued = "queued" // pending, active, scheduled or retry
	TaskDone   = "done"   // completed
	TaskFailed = "failed" // archived
)

// PlanDoc is `plan --json`:
//
//	{ "images": [{
//	    "root": "./images", "rel_path": "a/b.diskdump", "path": "/abs/images/a/b.diskdump",
//	    "location": "/images/a/b.diskdump", "size": 123,
//	    "upload":   {"task_id", "queue", "status": "new"|"queued"|"done"|"failed", "state": "<asynq state>"|""},
//	    "register": {…same…},
//	    "action": "upload"|"register"|"none"|"queued"|"failed"|"error",
//	    "reason": "…",
//	    "metadata": [{"field": "name"|"disk-format"|…|"properties.<key>", "value", "source"}],
//	    "warnings": ["…"],   // registered anyway: metafile warnings, not deployable as is
//	    "errors": ["…"] }],  // a registration now would be refused: invalid metadata, not deployable
//	  "problems": [{"path", "error"}],          // unreadable entries under the roots
//	  "summary": {"upload": 1, "register": 0, "none": 3, "queued": 0, "failed": 0, "error": 0} }
type PlanDoc struct {
	Images   []PlanImage    `json:"images"`
	Problems []PathError    `json:"problems"`
	Summary  map[string]int `json:"summary"`
}

// PlanImage is one image file's plan.
type PlanImage struct {
	Root     string   `json:"root"`
	RelPath  string   `json:"rel_path"`
	Path     string   `json:"path"`
	Location string   `json:"location"`
	Size     int64    `json:"size"`
	Upload   PlanTask `json:"upload"`
	Register PlanTask `json:"register"`
	Action   string   `json:"action"`
	Reason   string   `json:"reason"`
	// Metadata is what the image would be registered with now, and where
	// each value comes from (detected values included).
	Metadata []PlanField `json:"metadata"`
	Warnings []string    `json:"warnings"`
	Errors   []string    `json:"errors"`
}

// PlanTask is the deterministic task for one step and what Redis holds for it.
type PlanTask struct {
	TaskID string `json:"task_id"`
	Queue  string `json:"queue"`
	Status string `json:"status"`
	State  string `json:"state"`
}

func (a *app) planCommand() *cobra.Command {
	var explain bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what the watcher would do now, without doing it",
		Long: `Scan the watch roots once and, for every image file, look up the upload and
registration tasks the daemon would enqueue for it (task ids are deterministic:
the file's identity and the metafiles' content). An image is "upload" when its
file is new or changed, "register" when it was uploaded but its templates or
metafile changed, "none" when up to date, "queued" when work is pending, and
"failed" when that work failed permanently. Nothing is enqueued.

Finished tasks are remembered for a day (and not at all across restarts of an
embedded Redis); older images show as "upload", which is what syncd does at
start: re-uploading an unchanged image costs a stat and sends no data.

Each image's metadata is computed as its registration would compute it now,
including what is detected in the disk image: PROBLEMS lists what would be
refused (invalid metadata; a ROOT_PARTITION or OSFAMILY the disk contradicts)
and what would be registered with a warning (no OSFAMILY or ROOT_PARTITION:
not deployable by snf-image as it is). --explain shows every value and where
it comes from: built-in default, detected from the disk (which partition,
file or signature), the watch entry's defaults, a _template.meta, or the
image's own metafile.`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config(cmd)
			if err != nil {
				return err
			}
			insp, err := a.inspector(cmd)
			if err != nil {
				return err
			}
			if len(cfg.Watch) == 0 {
				return fmt.Errorf("no watch roots configured (watch: in %s)", orDash(cfg.Source))
			}
			scan, err := jobs.Scan(cmd.Context(), cfg.Watch)
			if err != nil {
				return err
			}
			catalog := jobs.NewCatalog(cfg.Watch, cfg.Node)
			det := detector(cfg)
			doc := PlanDoc{Images: []PlanImage{}, Problems: []PathError{}, Summary: map[string]int{}}
			for _, k := range []string{ActionUpload, ActionRegister, ActionNone, ActionQueued, ActionFailed, ActionError} {
				doc.Summary[k] = 0
			}
			for _, p := range scan.Problems {
				doc.Problems = append(doc.Problems, PathError{Path: p.Path, Error: p.Err.Error()})
			}
			for _, f := range scan.Images {
				pi, err := planImage(insp, catalog, f)
				if err != nil {
					return err
				}
				planMetadata(cmd.Context(), catalog, det, f, &pi)
				doc.Summary[pi.Action]++
				doc.Images = append(doc.Images, pi)
			}
			if a.jsonOut {
				return a.emitJSON(doc)
			}
			return a.writeOut(renderPlan(doc, explain))
		}),
	}
	cmd.Flags().BoolVarP(&explain, "explain", "e", false, "show each image's metadata and where every value comes from")
	return cmd
}

func planImage(insp *asynq.Inspector, catalog *jobs.Catalog, f jobs.FileFacts) (PlanImage, error) {
	pi := PlanImage{Root: f.Root, RelPath: f.RelPath, Path: f.AbsPath, Size: f.Size,
		Metadata: []PlanField{}, Warnings: []string{}, Errors: []string{}}
	up, err := catalog.UploadRequest(f, false)
	if err != nil {
		pi.Action, pi.Reason = ActionError, err.Error()
		return pi, nil
	}
	pi.Location = up.Payload.(jobs.UploadPayload).Location()
	if pi.Upload, err = lookupTask(insp, up); err != nil {
		return pi, err
	}
	// The registration that follows an upload is named after the uploaded
	// hash; the one a metafile edit queues, with no hash. Either one done
	// with the current metafiles means the image is registered as they say.
	hashes := []string{""}
	if h := uploadedHash(insp, up); h != "" {
		hashes = append(hashes, h)
	}
	for i, hash := range hashes {
		reg, err := catalog.RegisterRequest(f, hash, "", "plan", false)
		if err != nil {
			pi.Action, pi.Reason = ActionError, err.Error()
			return pi, nil
		}
		t, err := lookupTask(insp, reg)
		if err != nil {
			return pi, err
		}
		if i == 0 || statusRank[t.Status] > statusRank[pi.Register.Status] {
			pi.Register = t
		}
	}
	switch pi.Upload.Status {
	case TaskNew:
		pi.Action, pi.Reason = ActionUpload, "new or changed file: would upload (only missing blocks are sent) and register"
	case TaskQueued:
		pi.Action, pi.Reason = ActionQueued, "upload "+pi.Upload.State
	case TaskFailed:
		pi.Action, pi.Reason = ActionFailed, "upload failed: see `syncctl inspect "+pi.Upload.TaskID+"`, fix the cause, then `syncctl retry`"
	case TaskDone:
		switch pi.Register.Status {
		case TaskNew:
			pi.Action, pi.Reason = ActionRegister, "templates or metafile changed since the last registration: would re-register"
		case TaskQueued:
			pi.Action, pi.Reason = ActionQueued, "registration "+pi.Register.State
		case TaskFailed:
			pi.Action, pi.Reason = ActionFailed, "registration failed: see `syncctl inspect "+pi.Register.TaskID+"`, fix the cause, then `syncctl retry`"
		case TaskDone:
			pi.Action, pi.Reason = ActionNone, "up to date"
		}
	}
	return pi, nil
}

// statusRank orders what a task can say about a step: work in flight wins,
// then work done, then a failure, then nothing.
var statusRank = map[string]int{TaskNew: 0, TaskFailed: 1, TaskDone: 2, TaskQueued: 3}

// uploadedHash is the Merkle hash a completed upload task reported, or "".
func uploadedHash(insp *asynq.Inspector, up jobs.Request) string {
	ti, err := insp.GetTaskInfo(up.Queue, up.ID)
	if err != nil || ti.State != asynq.TaskStateCompleted {
		return ""
	}
	p, ok := jobs.DecodeProgress(ti.Result)
	if !ok {
		return ""
	}
	return p.ObjectHash
}

func lookupTask(insp *asynq.Inspector, r jobs.Request) (PlanTask, error) {
	pt := PlanTask{TaskID: r.ID, Queue: r.Queue, Status: TaskNew}
	ti, err := insp.GetTaskInfo(r.Queue, r.ID)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return pt, nil
	case err != nil:
		return pt, fmt.Errorf("looking up task %s: %w", r.ID, err)
	}
	pt.State = ti.State.String()
	switch ti.State {
	case asynq.TaskStateCompleted:
		pt.Status = TaskDone
	case asynq.TaskStateArchived:
		pt.Status = TaskFailed
	default:
		pt.Status = TaskQueued
	}
	return pt, nil
}

func renderPlan(doc PlanDoc, explain bool) []byte {
	var buf bytes.Buffer
	if len(doc.Images) == 0 {
		fmt.Fprintln(&buf, "No image files under the watch roots.")
	} else {
		t := newTable(&buf, "IMAGE", "UPLOAD", "REGISTER", "PLAN")
		for _, im := range doc.Images {
			what := map[string]string{
				ActionUpload: "would upload", ActionRegister: "would re-register", ActionNone: "up to date",
				ActionQueued: "queued", ActionFailed: "failed", ActionError: "error",
			}[im.Action]
			if im.Action == ActionQueued || im.Action == ActionFailed || im.Action == ActionError {
				what += ": " + oneLine(im.Reason)
			}
			t.row(im.Location+"  ("+im.RelPath+")", taskCell(im.Upload), taskCell(im.Register), what)
		}
		t.flush()
	}
	for _, p := range doc.Problems {
		fmt.Fprintf(&buf, "cannot read %s: %s\n", escapeText(p.Path), escapeText(p.Error))
	}
	var parts []string
	for _, k := range []string{ActionUpload, ActionRegister, ActionNone, ActionQueued, ActionFailed, ActionError} {
		if n := doc.Summary[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(&buf, "\n%d image(s): %s.\n", len(doc.Images), strings.Join(parts, ", "))
	}
	renderPlanNotes(&buf, doc, explain)
	return buf.Bytes()
}

func taskCell(t PlanTask) string {
	if t.State != "" && t.Status == TaskQueued {
		return t.State
	}
	return t.Status
}
