package ctl

import (
	"bytes"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/imagesync/imagesync/internal/jobs"
)

// ResyncDoc is `resync --json`:
//
//	{ "enqueued": [{"path", "root", "rel_path", "location", "size",
//	                "task_id", "queue", "outcome": "enqueued"|"queued"}],
//	  "errors":   [{"path", "error"}] }
//
// "queued" means the same upload was already waiting or running; it was
// asked to run now rather than after its backoff.
type ResyncDoc struct {
	Enqueued []ResyncedFile `json:"enqueued"`
	Errors   []PathError    `json:"errors"`
}

// ResyncedFile is one file whose forced upload was enqueued.
type ResyncedFile struct {
	Path     string `json:"path"`
	Root     string `json:"root"`
	RelPath  string `json:"rel_path"`
	Location string `json:"location"`
	Size     int64  `json:"size"`
	TaskID   string `json:"task_id"`
	Queue    string `json:"queue"`
	Outcome  string `json:"outcome"`
}

// PathError is a file that could not be handled.
type PathError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

func (a *app) resyncCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "resync PATH...",
		Short: "Upload and register images again, ignoring caches and earlier results",
		Long: `Force a full re-sync of image files: the file is re-hashed (the hashmap cache
is ignored), its missing blocks uploaded and the image registered and published
again even if it looks up to date. Each PATH must be an image file under one of
the configured watch roots. Unchanged blocks are still not re-sent.`,
		Example: "  syncctl resync images/debian-12.diskdump",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("resync needs at least one image PATH")
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config(cmd)
			if err != nil {
				return err
			}
			conn, err := a.redis(cmd)
			if err != nil {
				return err
			}
			catalog := jobs.NewCatalog(cfg.Watch, cfg.Node)
			enq := jobs.NewEnqueuer(conn.Client, cfg.Node)
			doc := ResyncDoc{Enqueued: []ResyncedFile{}, Errors: []PathError{}}
			for _, p := range args {
				f, err := jobs.StatImage(cfg.Watch, p)
				if err != nil {
					doc.Errors = append(doc.Errors, PathError{Path: p, Error: err.Error()})
					continue
				}
				req, err := catalog.UploadRequest(f, true)
				if err != nil {
					doc.Errors = append(doc.Errors, PathError{Path: p, Error: err.Error()})
					continue
				}
				out, err := enq.Enqueue(cmd.Context(), req)
				if err != nil {
					doc.Errors = append(doc.Errors, PathError{Path: p, Error: err.Error()})
					continue
				}
				payload := req.Payload.(jobs.UploadPayload)
				doc.Enqueued = append(doc.Enqueued, ResyncedFile{
					Path: f.AbsPath, Root: f.Root, RelPath: f.RelPath, Location: payload.Location(), Size: f.Size,
					TaskID: req.ID, Queue: req.Queue, Outcome: string(out),
				})
			}
			if a.jsonOut {
				if err := a.emitJSON(doc); err != nil {
					return err
				}
			} else if err := a.writeOut(renderResync(doc)); err != nil {
				return err
			}
			if len(doc.Errors) > 0 {
				return failed(fmt.Errorf("%d of %d path(s) could not be resynced", len(doc.Errors), len(args)))
			}
			return nil
		}),
	}
}

func renderResync(doc ResyncDoc) []byte {
	var buf bytes.Buffer
	for _, e := range doc.Enqueued {
		what := "upload queued"
		if e.Outcome == string(jobs.Queued) {
			what = "already queued; asked to run now"
		}
		fmt.Fprintf(&buf, "%s → %s: %s (task %s on %s)\n", escapeText(e.Path), escapeText(e.Location), what, e.TaskID, escapeText(e.Queue))
	}
	for _, e := range doc.Errors {
		fmt.Fprintf(&buf, "error: %s\n", escapeText(e.Error))
	}
	return buf.Bytes()
}
