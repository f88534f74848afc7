package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"
)

// listTasks reads up to limit tasks (0: all) in one state of one queue.
func listTasks(insp *asynq.Inspector, queue string, state asynq.TaskState, limit int) ([]*asynq.TaskInfo, error) {
	const page = 500
	var out []*asynq.TaskInfo
	for n := 1; ; n++ {
		opts := []asynq.ListOption{asynq.PageSize(page), asynq.Page(n)}
		var (
			got []*asynq.TaskInfo
			err error
		)
		switch state {
		case asynq.TaskStatePending:
			got, err = insp.ListPendingTasks(queue, opts...)
		case asynq.TaskStateActive:
			got, err = insp.ListActiveTasks(queue, opts...)
		case asynq.TaskStateScheduled:
			got, err = insp.ListScheduledTasks(queue, opts...)
		case asynq.TaskStateRetry:
			got, err = insp.ListRetryTasks(queue, opts...)
		case asynq.TaskStateArchived:
			got, err = insp.ListArchivedTasks(queue, opts...)
		case asynq.TaskStateCompleted:
			got, err = insp.ListCompletedTasks(queue, opts...)
		default:
			return nil, fmt.Errorf("cannot list %s tasks", state)
		}
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s tasks in %s: %w", state, queue, err)
		}
		out = append(out, got...)
		if limit > 0 && len(out) >= limit {
			return out[:limit], nil
		}
		if len(got) < page {
			return out, nil
		}
	}
}

// ListDoc is `list --json`:
//
//	{ "state": "archived", "queues": ["default", …], "tasks": [Task, …] }
type ListDoc struct {
	State  string   `json:"state"`
	Queues []string `json:"queues"`
	Tasks  []Task   `json:"tasks"`
}

func (a *app) listCommand() *cobra.Command {
	var queue string
	var limit int
	cmd := &cobra.Command{
		Use:   "list STATE",
		Short: "List tasks in one state: " + strings.Join(stateNames, ", "),
		Long: `List tasks in one state across the queues (or one queue with --queue).
STATE is one of ` + strings.Join(stateNames, ", ") + `; "failed" means archived and
"done" means completed.`,
		Example:   "  syncctl list failed\n  syncctl list pending --queue default --json",
		ValidArgs: append(slices.Clone(stateNames), "failed", "done"),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("list needs one STATE (%s)", strings.Join(stateNames, ", "))
			}
			if _, ok := parseState(args[0]); !ok {
				return usageErr("unknown state %q: want one of %s", args[0], strings.Join(stateNames, ", "))
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			state, _ := parseState(args[0])
			if limit < 0 {
				return usageErr("--limit must not be negative")
			}
			insp, err := a.inspector(cmd)
			if err != nil {
				return err
			}
			queues, err := a.queueSelection(cmd, queue)
			if err != nil {
				return err
			}
			doc := ListDoc{State: state.String(), Queues: queues, Tasks: []Task{}}
			for _, q := range queues {
				left := 0
				if limit > 0 {
					left = limit - len(doc.Tasks)
					if left <= 0 {
						break
					}
				}
				infos, err := listTasks(insp, q, state, left)
				if err != nil {
					return err
				}
				for _, ti := range infos {
					doc.Tasks = append(doc.Tasks, taskView(ti))
				}
			}
			if a.jsonOut {
				return a.emitJSON(doc)
			}
			return a.writeOut(renderTaskList(doc, time.Now()))
		}),
	}
	cmd.Flags().StringVarP(&queue, "queue", "q", "", "only this queue")
	cmd.Flags().IntVarP(&limit, "limit", "n", 100, "at most this many tasks (0: all)")
	return cmd
}

// queueSelection is --queue, or every queue. A queue name that neither
// Redis nor this node knows is a usage error (a typo would otherwise list
// nothing and look like an empty queue).
func (a *app) queueSelection(cmd *cobra.Command, queue string) ([]string, error) {
	queues, err := a.queues(cmd)
	if err != nil || queue == "" {
		return queues, err
	}
	if !slices.Contains(queues, queue) {
		return nil, usageErr("unknown queue %q (known: %s)", queue, strings.Join(queues, ", "))
	}
	return []string{queue}, nil
}

func renderTaskList(doc ListDoc, now time.Time) []byte {
	var buf bytes.Buffer
	if len(doc.Tasks) == 0 {
		fmt.Fprintf(&buf, "No %s tasks.\n", doc.State)
		return buf.Bytes()
	}
	t := newTable(&buf, "ID", "TYPE", "QUEUE", "IMAGE", "TRIES", "WHEN", "DETAIL")
	for _, task := range doc.Tasks {
		when, detail := "-", ""
		switch task.State {
		case "archived", "retry":
			if task.LastFailedAt != nil {
				when = ago(now, *task.LastFailedAt)
			}
			detail = oneLine(task.LastError)
			if task.State == "retry" && task.NextProcessAt != nil {
				detail = "next try " + ago(now, *task.NextProcessAt) + ": " + detail
			}
		case "scheduled":
			if task.NextProcessAt != nil {
				when = ago(now, *task.NextProcessAt)
			}
		case "completed":
			if task.CompletedAt != nil {
				when = ago(now, *task.CompletedAt)
			}
			if task.Progress != nil {
				detail = progressSummary(*task.Progress)
			}
		case "active":
			if task.Progress != nil {
				when = ago(now, task.Progress.StartedAt)
				detail = progressSummary(*task.Progress)
			}
			if task.Orphaned {
				detail = "orphaned: its worker stopped; a running syncd will pick it up again"
			}
		}
		t.row(task.ID, shortType(task.Type), task.Queue, task.subject(),
			fmt.Sprintf("%d/%d", task.Retried, task.MaxRetry), when, orDash(detail))
	}
	t.flush()
	fmt.Fprintf(&buf, "%d %s task(s).\n", len(doc.Tasks), doc.State)
	return buf.Bytes()
}

// findTask looks a task id up in the given queues.
func findTask(insp *asynq.Inspector, queues []string, id string) (*asynq.TaskInfo, error) {
	for _, q := range queues {
		ti, err := insp.GetTaskInfo(q, id)
		switch {
		case err == nil:
			return ti, nil
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			continue
		default:
			return nil, fmt.Errorf("looking up %s in %s: %w", id, q, err)
		}
	}
	return nil, fmt.Errorf("no task %q in queue(s) %s (finished tasks are kept for a day; see `syncctl list`)", id, strings.Join(queues, ", "))
}

func (a *app) inspectCommand() *cobra.Command {
	var queue string
	cmd := &cobra.Command{
		Use:   "inspect ID | FILE",
		Short: "Show one task (state, payload, progress, errors), or what a disk image holds",
		Long: `With a task ID, show the task: state, payload (image path, remote location),
progress or result, errors.

With a disk image FILE, show what syncd detects in it without mounting it:
the partition table, each partition's filesystem, and the properties snf-image
needs (OSFAMILY, ROOT_PARTITION, PARTITION_TABLE, OS, DESCRIPTION, KERNEL,
USERS), each with its evidence (which partition, which file, which signature),
and whether snf-image could deploy the image with those alone. This needs no
configuration, Redis or cloud. An argument is a FILE when it names an existing
file, contains a "/", or ends in .diskdump, .extdump, .ntfsdump, .img, .raw,
.dd, .bin or .iso (task ids never do); write ./NAME for any other file.`,
		Example: "  syncctl inspect upload:3f2a…\n  syncctl inspect register:9c1e… --json\n" +
			"  syncctl inspect images/debian-12.diskdump\n  syncctl inspect ./disk --json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("inspect needs one task ID or disk image FILE")
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if isImageArg(args[0]) {
				return a.inspectImage(cmd, args[0])
			}
			insp, err := a.inspector(cmd)
			if err != nil {
				return err
			}
			queues, err := a.queueSelection(cmd, queue)
			if err != nil {
				return err
			}
			ti, err := findTask(insp, queues, args[0])
			if err != nil {
				return err
			}
			d := taskDetail(ti)
			if a.jsonOut {
				return a.emitJSON(d)
			}
			return a.writeOut(renderTaskDetail(d, time.Now()))
		}),
	}
	cmd.Flags().StringVarP(&queue, "queue", "q", "", "look only in this queue")
	cmd.ValidArgsFunction = a.completeTaskIDs(1, asynq.TaskStateActive, asynq.TaskStateArchived, asynq.TaskStateRetry,
		asynq.TaskStatePending, asynq.TaskStateScheduled, asynq.TaskStateCompleted)
	return cmd
}

// completeTaskIDs offers the ids of tasks in the given states (at most max
// arguments; 0: any number), for shell completion. Errors offer nothing.
func (a *app) completeTaskIDs(max int, states ...asynq.TaskState) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if max > 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		insp, err := a.inspector(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		queues, err := a.queues(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, q := range queues {
			for _, st := range states {
				infos, err := listTasks(insp, q, st, 200)
				if err != nil {
					continue
				}
				for _, ti := range infos {
					if strings.HasPrefix(ti.ID, toComplete) && !slices.Contains(args, ti.ID) {
						out = append(out, cobra.CompletionWithDesc(ti.ID, ti.State.String()+" "+taskView(ti).subject()))
					}
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func renderTaskDetail(d TaskDetail, now time.Time) []byte {
	var buf bytes.Buffer
	t := newTable(&buf)
	t.row("id", d.ID)
	t.row("type", d.Type)
	t.row("queue", d.Queue)
	t.row("state", d.State)
	if d.Path != "" {
		t.row("file", d.Path)
	}
	if d.Location != "" {
		t.row("object", d.Location)
	}
	t.row("tries", fmt.Sprintf("%d of %d retries used", d.Retried, d.MaxRetry))
	if d.LastFailedAt != nil {
		t.row("last failure", fmt.Sprintf("%s (%s)", d.LastFailedAt.Format(time.RFC3339), ago(now, *d.LastFailedAt)))
	}
	if d.NextProcessAt != nil && d.State != "completed" {
		t.row("next run", fmt.Sprintf("%s (%s)", d.NextProcessAt.Format(time.RFC3339), ago(now, *d.NextProcessAt)))
	}
	if d.CompletedAt != nil {
		t.row("completed", fmt.Sprintf("%s (%s)", d.CompletedAt.Format(time.RFC3339), ago(now, *d.CompletedAt)))
	}
	if d.TimeoutSeconds > 0 {
		t.row("timeout", durHuman(time.Duration(d.TimeoutSeconds*float64(time.Second))))
	}
	if d.Orphaned {
		t.row("orphaned", "yes: its worker stopped; a running syncd picks it up again")
	}
	if d.Progress != nil {
		p := *d.Progress
		t.row("phase", p.Phase)
		if s := progressSummary(p); s != "" {
			t.row("progress", s)
		}
		if p.ImageID != "" {
			t.row("image id", p.ImageID)
		}
		if p.ObjectHash != "" {
			t.row("object hash", p.ObjectHash)
		}
		if len(p.Changes) > 0 {
			t.row("changes", strings.Join(p.Changes, "; "))
		}
		if p.Note != "" {
			t.row("note", p.Note)
		}
	}
	t.flush()
	if d.LastError != "" {
		lines := strings.Split(strings.TrimSpace(d.LastError), "\n")
		for i, l := range lines {
			lines[i] = escapeText(l)
		}
		fmt.Fprintf(&buf, "\nlast error:\n  %s\n", strings.Join(lines, "\n  "))
	}
	fmt.Fprintf(&buf, "\npayload:\n  %s\n", indentJSON(d.Payload))
	if string(d.Result) != "null" && d.Progress == nil {
		fmt.Fprintf(&buf, "\nresult:\n  %s\n", indentJSON(d.Result))
	}
	return buf.Bytes()
}

func indentJSON(raw []byte) string {
	var buf bytes.Buffer
	if err := jsonIndent(&buf, raw); err != nil {
		return string(raw)
	}
	return strings.ReplaceAll(buf.String(), "\n", "\n  ")
}

// RetryDoc is `retry --json`:
//
//	{ "retried": [{"id", "queue", "type", "path", "from": "archived"|"retry"|"scheduled"}],
//	  "skipped": [{"id", "queue", "state", "reason"}],
//	  "errors":  [{"id", "error"}],
//	  "auth_paused": "" | "<why the queues are paused>" }
type RetryDoc struct {
	Retried    []RetriedTask `json:"retried"`
	Skipped    []SkippedTask `json:"skipped"`
	Errors     []IDError     `json:"errors"`
	AuthPaused string        `json:"auth_paused"`
}

// RetriedTask is a task moved back to pending.
type RetriedTask struct {
	ID    string `json:"id"`
	Queue string `json:"queue"`
	Type  string `json:"type"`
	Path  string `json:"path"`
	From  string `json:"from"`
}

// SkippedTask is a named task that needed no retry.
type SkippedTask struct {
	ID     string `json:"id"`
	Queue  string `json:"queue"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// IDError is a task id (or path) that could not be handled.
type IDError struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

func (a *app) retryCommand() *cobra.Command {
	var queue string
	var all bool
	cmd := &cobra.Command{
		Use:   "retry ID... | --all",
		Short: "Run failed (archived) or waiting (retry, scheduled) tasks again now",
		Long: `Move tasks back to pending so a worker runs them now: archived tasks (failed
permanently, after fixing the cause), and tasks waiting out a retry backoff.
--all does this for every archived and retrying task (of --queue, or all queues).
To redo work that completed, use "syncctl resync PATH" instead.`,
		Example: "  syncctl retry upload:3f2a…\n  syncctl retry --all --queue default",
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usageErr("give task IDs or --all, not both")
			case !all && len(args) == 0:
				return usageErr("retry needs task IDs, or --all")
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			insp, err := a.inspector(cmd)
			if err != nil {
				return err
			}
			queues, err := a.queueSelection(cmd, queue)
			if err != nil {
				return err
			}
			doc := RetryDoc{Retried: []RetriedTask{}, Skipped: []SkippedTask{}, Errors: []IDError{}}
			doc.AuthPaused = a.authPaused(cmd)
			var targets []*asynq.TaskInfo
			if all {
				for _, q := range queues {
					for _, st := range []asynq.TaskState{asynq.TaskStateArchived, asynq.TaskStateRetry} {
						infos, err := listTasks(insp, q, st, 0)
						if err != nil {
							return err
						}
						targets = append(targets, infos...)
					}
				}
			} else {
				for _, id := range args {
					ti, err := findTask(insp, queues, id)
					if err != nil {
						doc.Errors = append(doc.Errors, IDError{ID: id, Error: err.Error()})
						continue
					}
					targets = append(targets, ti)
				}
			}
			for _, ti := range targets {
				switch ti.State {
				case asynq.TaskStateArchived, asynq.TaskStateRetry, asynq.TaskStateScheduled:
					if err := insp.RunTask(ti.Queue, ti.ID); err != nil {
						doc.Errors = append(doc.Errors, IDError{ID: ti.ID, Error: fmt.Sprintf("cannot run it: %v", err)})
						continue
					}
					doc.Retried = append(doc.Retried, RetriedTask{ID: ti.ID, Queue: ti.Queue, Type: ti.Type, Path: taskView(ti).Path, From: ti.State.String()})
				case asynq.TaskStateCompleted:
					doc.Skipped = append(doc.Skipped, SkippedTask{ID: ti.ID, Queue: ti.Queue, State: ti.State.String(),
						Reason: "it completed; to redo the work run `syncctl resync PATH`"})
				default:
					doc.Skipped = append(doc.Skipped, SkippedTask{ID: ti.ID, Queue: ti.Queue, State: ti.State.String(),
						Reason: "it is already " + ti.State.String()})
				}
			}
			if a.jsonOut {
				if err := a.emitJSON(doc); err != nil {
					return err
				}
			} else if err := a.writeOut(renderRetry(doc, all)); err != nil {
				return err
			}
			if len(doc.Errors) > 0 {
				return failed(fmt.Errorf("%d of the tasks could not be retried", len(doc.Errors)))
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&queue, "queue", "q", "", "only this queue")
	cmd.Flags().BoolVar(&all, "all", false, "every archived and retrying task")
	cmd.ValidArgsFunction = a.completeTaskIDs(0, asynq.TaskStateArchived, asynq.TaskStateRetry, asynq.TaskStateScheduled)
	return cmd
}

func renderRetry(doc RetryDoc, all bool) []byte {
	var buf bytes.Buffer
	if doc.AuthPaused != "" {
		fmt.Fprintf(&buf, "WARNING: the queues are paused because the cloud rejected the token; nothing runs until syncd restarts with a valid one:\n  %s\n\n", escapeText(oneLine(doc.AuthPaused)))
	}
	for _, r := range doc.Retried {
		fmt.Fprintf(&buf, "retrying %s (%s, was %s) %s\n", escapeText(r.ID), escapeText(shortType(r.Type)), r.From, escapeText(r.Path))
	}
	for _, s := range doc.Skipped {
		fmt.Fprintf(&buf, "skipped  %s: %s\n", escapeText(s.ID), escapeText(s.Reason))
	}
	for _, e := range doc.Errors {
		fmt.Fprintf(&buf, "error    %s: %s\n", escapeText(e.ID), escapeText(e.Error))
	}
	if all && len(doc.Retried) == 0 && len(doc.Errors) == 0 {
		fmt.Fprintln(&buf, "Nothing to retry: no archived or retrying tasks.")
	} else {
		fmt.Fprintf(&buf, "%s task(s) queued to run again.\n", strconv.Itoa(len(doc.Retried)))
	}
	return buf.Bytes()
}
