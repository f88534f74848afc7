package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/nodes"
)

// StatusDoc is `status --json` (with --watch, one compact document per line
// and refresh):
//
//	{
//	  "time": "…", "redis": "127.0.0.1:6390", "node": "build-host-1",
//	  "auth_paused": "" | "<the 401 that paused the queues>",
//	  "down_nodes": [{"node": "build-2", "last_seen": "…" | null,
//	                  "waiting": {"uploads": 12, "other": 3}}],   // nodes down with work waiting
//	  "queues": [{"queue": "default", "paused": false, "pending": 0, "active": 0,
//	              "scheduled": 0, "retry": 0, "archived": 0, "completed": 0,
//	              "processed_today": 0, "failed_today": 0, "latency_seconds": 0}],
//	  "totals": {"pending": 0, …same counters…},
//	  "workers": [{"node", "host", "pid", "concurrency", "queues": […], "status", "started_at", "busy"}],
//	  "active": [{…Task…, "phase": "hashing", "unit": "bytes"|"blocks"|"",
//	              "done": 0, "total": 0, "fraction": 0.31 | null,
//	              "bytes_per_second": 0, "elapsed_seconds": 0, "stalled": false}],
//	  "failures": [Task, …],  // archived and retrying, most recent first
//	  "skipped": [{"node", "root", "path", "reason", "since"}],  // files the watchers could not use
//	  "deploy_warnings": [{"location", "path", "warnings": ["…"], "at", "task"}],
//	                          // images registered although snf-image could not deploy them as they are
//	  "quota_unreadable": [{"node", "reason", "since"}]  // nodes uploading without the quota pre-check
//	}
type StatusDoc struct {
	Time       time.Time     `json:"time"`
	Redis      string        `json:"redis"`
	Node       string        `json:"node"`
	AuthPaused string        `json:"auth_paused"`
	DownNodes  []DownNode    `json:"down_nodes"`
	Queues     []QueueStatus `json:"queues"`
	Totals     Counts        `json:"totals"`
	Workers    []Worker      `json:"workers"`
	Active     []ActiveJob   `json:"active"`
	Failures   []Task        `json:"failures"`
	// Skipped are files under the watch roots that a node's watcher could
	// not use (a symlink its policy refuses, a broken link, an unreadable
	// file), by node and path.
	Skipped []jobs.SkippedFile `json:"skipped"`
	// DeployWarnings are the images registered without OSFAMILY or
	// ROOT_PARTITION (set or detected), by path.
	DeployWarnings []jobs.DeployWarning `json:"deploy_warnings"`
	// QuotaUnreadable are the nodes that cannot read the storage quota:
	// they upload without the pre-check, and a full quota shows as the
	// server's 413.
	QuotaUnreadable []jobs.QuotaNote `json:"quota_unreadable"`
}

// DownNode is a node that is down while work waits in its own queues, which
// only it can run.
type DownNode struct {
	Node     string     `json:"node"`
	LastSeen *time.Time `json:"last_seen"`
	Waiting  Waiting    `json:"waiting"`
}

// Counts are task counts by state, plus today's processed/failed totals.
type Counts struct {
	Pending        int `json:"pending"`
	Active         int `json:"active"`
	Scheduled      int `json:"scheduled"`
	Retry          int `json:"retry"`
	Archived       int `json:"archived"`
	Completed      int `json:"completed"`
	ProcessedToday int `json:"processed_today"`
	FailedToday    int `json:"failed_today"`
}

func (c *Counts) add(o Counts) {
	c.Pending += o.Pending
	c.Active += o.Active
	c.Scheduled += o.Scheduled
	c.Retry += o.Retry
	c.Archived += o.Archived
	c.Completed += o.Completed
	c.ProcessedToday += o.ProcessedToday
	c.FailedToday += o.FailedToday
}

// QueueStatus is one queue's line.
type QueueStatus struct {
	Queue  string `json:"queue"`
	Paused bool   `json:"paused"`
	Counts
	LatencySeconds float64 `json:"latency_seconds"`
}

// Worker is one asynq server (syncd runs two: uploads and the rest).
type Worker struct {
	// Node is the node whose own queues the server serves ("" for one
	// that serves only the queues of every node).
	Node        string     `json:"node"`
	Host        string     `json:"host"`
	PID         int        `json:"pid"`
	Concurrency int        `json:"concurrency"`
	Queues      []string   `json:"queues"`
	Status      string     `json:"status"`
	StartedAt   *time.Time `json:"started_at"`
	Busy        int        `json:"busy"`
}

// ActiveJob is a running task with its progress.
type ActiveJob struct {
	Task
	Phase string `json:"phase"`
	// Unit says what Done and Total count: bytes hashed while hashing,
	// blocks sent while uploading; "" when the phase has no measure.
	Unit     string   `json:"unit"`
	Done     int64    `json:"done"`
	Total    int64    `json:"total"`
	Fraction *float64 `json:"fraction"`
	// BytesPerSecond is the average since the job started, or with --watch
	// the rate over the last refresh.
	BytesPerSecond float64 `json:"bytes_per_second"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Stalled: no progress report for a minute while hashing or uploading.
	Stalled bool `json:"stalled"`
}

const stallAfter = time.Minute

func (a *app) statusCommand() *cobra.Command {
	var (
		watch      bool
		interval   time.Duration
		failures   int
		iterations int
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Queues, counts by state, running jobs with progress, recent failures",
		Long: `Show the queues and their task counts, the workers connected to Redis, the
running jobs with their progress and throughput, the most recent failures
with their messages, and why the queues are paused if the cloud rejected the
token. --watch refreshes until interrupted: on a terminal it redraws the
screen; into a pipe or a file it prints one plain snapshot after another.
--watch --json prints NDJSON: one compact JSON document per line and
refresh.`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return usageErr("--interval must be positive")
			}
			if failures < 0 {
				return usageErr("--failures must not be negative")
			}
			if _, err := a.redis(cmd); err != nil {
				return err
			}
			if !watch {
				doc, err := a.status(cmd, failures, nil)
				if err != nil {
					return err
				}
				if a.jsonOut {
					return a.emitJSON(doc)
				}
				return a.writeOut(renderStatus(doc))
			}
			return a.watchStatus(cmd, interval, failures, iterations)
		}),
	}
	f := cmd.Flags()
	f.BoolVarP(&watch, "watch", "w", false, "refresh until interrupted")
	f.DurationVar(&interval, "interval", 2*time.Second, "refresh interval for --watch")
	f.IntVar(&failures, "failures", 5, "how many recent failures to show")
	f.IntVar(&iterations, "iterations", 0, "with --watch, stop after this many refreshes (0: until interrupted)")
	_ = f.MarkHidden("iterations")
	return cmd
}

// sample is an active job's counter at one refresh, for --watch rates.
type sample struct {
	phase string
	bytes int64
	at    time.Time
}

func (a *app) watchStatus(cmd *cobra.Command, interval time.Duration, failures, iterations int) error {
	ctx := cmd.Context()
	prev := map[string]sample{}
	for i := 0; iterations == 0 || i < iterations; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(interval):
			}
		}
		doc, err := a.status(cmd, failures, prev)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if a.jsonOut {
			// NDJSON: one compact document per line and refresh.
			b, err := compactJSON(doc)
			if err != nil {
				return err
			}
			if err := a.writeRaw(b); err != nil {
				return err
			}
			continue
		}
		if !a.opts.Terminal(a.opts.Stdout) {
			// A pipe or a log: one plain snapshot after another.
			frame := renderStatus(doc)
			if i > 0 {
				frame = append([]byte("\n"), frame...)
			}
			if err := a.writeOut(frame); err != nil {
				return err
			}
			continue
		}
		// Home the cursor and clear the screen, then draw the frame in one
		// write; the frame itself is sanitised, only these two are ours.
		frame := sanitizeOutput(renderStatus(doc))
		frame = fmt.Appendf(frame, "\nrefreshing every %s; Ctrl-C to stop\n", interval)
		if err := a.writeRaw(append([]byte("\x1b[H\x1b[2J"), frame...)); err != nil {
			return err
		}
	}
	return nil
}

// status gathers one snapshot. prev, when not nil, holds the previous
// refresh's samples and is updated.
func (a *app) status(cmd *cobra.Command, failures int, prev map[string]sample) (*StatusDoc, error) {
	insp, err := a.inspector(cmd)
	if err != nil {
		return nil, err
	}
	queues, err := a.queues(cmd)
	if err != nil {
		return nil, err
	}
	known, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	now := time.Now()
	doc := &StatusDoc{
		Time: now.UTC(), Redis: a.conn.Addr, Node: a.cfg.Node, AuthPaused: a.authPaused(cmd),
		Queues: []QueueStatus{}, Workers: []Worker{}, Active: []ActiveJob{}, Failures: []Task{}, Skipped: []jobs.SkippedFile{}, DownNodes: []DownNode{},
	}
	for _, q := range queues {
		qs := QueueStatus{Queue: q}
		if !slices.Contains(known, q) {
			// Never used yet: asynq has no record (and no stats) of it.
			doc.Queues = append(doc.Queues, qs)
			continue
		}
		info, err := insp.GetQueueInfo(q)
		switch {
		case err != nil:
			return nil, fmt.Errorf("reading queue %s: %w", q, err)
		default:
			qs.Paused = info.Paused
			qs.Counts = Counts{Pending: info.Pending, Active: info.Active, Scheduled: info.Scheduled,
				Retry: info.Retry, Archived: info.Archived, Completed: info.Completed,
				ProcessedToday: info.Processed, FailedToday: info.Failed}
			qs.LatencySeconds = info.Latency.Seconds()
		}
		doc.Totals.add(qs.Counts)
		doc.Queues = append(doc.Queues, qs)
	}
	list, err := nodes.List(cmd.Context(), a.conn.Client, insp, now)
	if err != nil {
		return nil, err
	}
	for _, n := range list {
		if n.Up {
			continue
		}
		var w Waiting
		for _, q := range doc.Queues {
			c := q.Pending + q.Active + q.Scheduled + q.Retry
			switch q.Queue {
			case jobs.UploadQueue(n.Node):
				w.Uploads += c
			case jobs.NodeQueue(n.Node):
				w.Other += c
			}
		}
		if w.total() > 0 {
			doc.DownNodes = append(doc.DownNodes, DownNode{Node: n.Node, LastSeen: n.LastSeen, Waiting: w})
		}
	}
	servers, err := insp.Servers()
	if err != nil {
		return nil, fmt.Errorf("listing workers: %w", err)
	}
	for _, s := range servers {
		w := Worker{Host: s.Host, PID: s.PID, Concurrency: s.Concurrency, Status: s.Status, StartedAt: timePtr(s.Started), Busy: len(s.ActiveWorkers), Queues: []string{}}
		for q := range s.Queues {
			w.Queues = append(w.Queues, q)
			if n, ok := jobs.QueueNode(q); ok {
				w.Node = n
			}
		}
		slices.Sort(w.Queues)
		doc.Workers = append(doc.Workers, w)
	}
	sort.Slice(doc.Workers, func(i, j int) bool {
		if doc.Workers[i].Host != doc.Workers[j].Host {
			return doc.Workers[i].Host < doc.Workers[j].Host
		}
		return doc.Workers[i].PID < doc.Workers[j].PID
	})

	seen := map[string]bool{}
	var failed []Task
	for _, q := range queues {
		active, err := listTasks(insp, q, asynq.TaskStateActive, 0)
		if err != nil {
			return nil, err
		}
		for _, ti := range active {
			job := activeJob(taskView(ti), now, prev)
			seen[job.ID] = true
			doc.Active = append(doc.Active, job)
		}
		if failures == 0 {
			continue
		}
		for _, st := range []asynq.TaskState{asynq.TaskStateArchived, asynq.TaskStateRetry} {
			// Archives are bounded by asynq; reading a generous page keeps
			// this cheap while still finding the latest failures.
			infos, err := listTasks(insp, q, st, 1000)
			if err != nil {
				return nil, err
			}
			for _, ti := range infos {
				failed = append(failed, taskView(ti))
			}
		}
	}
	sortActive(doc.Active)
	sortFailures(failed)
	doc.Failures = append(doc.Failures, failed[:min(failures, len(failed))]...)
	if doc.Skipped, err = jobs.ListSkipped(cmd.Context(), a.conn.Client); err != nil {
		return nil, err
	}
	if doc.DeployWarnings, err = jobs.ReadDeployWarnings(cmd.Context(), a.conn.Client); err != nil {
		return nil, err
	}
	if doc.QuotaUnreadable, err = jobs.ListQuotaUnreadable(cmd.Context(), a.conn.Client); err != nil {
		return nil, err
	}
	for id := range prev {
		if !seen[id] {
			delete(prev, id)
		}
	}
	return doc, nil
}

// sortActive orders running jobs so that rows stay put between refreshes:
// the longest-running first, ties (jobs yet to report) by queue and id,
// never by the order Redis happened to list them in.
func sortActive(jobs []ActiveJob) {
	sort.SliceStable(jobs, func(i, j int) bool {
		a, b := jobs[i], jobs[j]
		if a.ElapsedSeconds != b.ElapsedSeconds {
			return a.ElapsedSeconds > b.ElapsedSeconds
		}
		if a.Queue != b.Queue {
			return a.Queue < b.Queue
		}
		return a.ID < b.ID
	})
}

// sortFailures orders failures most recent first, ties by queue and id.
func sortFailures(tasks []Task) {
	sort.SliceStable(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		if ta, tb := failedAt(a), failedAt(b); !ta.Equal(tb) {
			return ta.After(tb)
		}
		if a.Queue != b.Queue {
			return a.Queue < b.Queue
		}
		return a.ID < b.ID
	})
}

func failedAt(t Task) time.Time {
	if t.LastFailedAt == nil {
		return time.Time{}
	}
	return *t.LastFailedAt
}

// activeJob measures a running task's progress.
func activeJob(t Task, now time.Time, prev map[string]sample) ActiveJob {
	j := ActiveJob{Task: t}
	p := t.Progress
	if p == nil {
		j.Phase = "starting"
		return j
	}
	j.Phase = p.Phase
	j.ElapsedSeconds = now.Sub(p.StartedAt).Seconds()
	var bytesDone int64
	switch p.Phase {
	case "hashing":
		j.Unit, j.Done, j.Total, bytesDone = "bytes", p.BytesHashed, p.TotalBytes, p.BytesHashed
	case "uploading":
		j.Unit, j.Done, j.Total, bytesDone = "blocks", p.BlocksSent, p.BlocksMissing, p.BytesSent
	}
	if j.Unit != "" && j.Total > 0 {
		f := min(float64(j.Done)/float64(j.Total), 1)
		j.Fraction = &f
	}
	if j.Unit != "" {
		if span := p.UpdatedAt.Sub(p.StartedAt).Seconds(); span > 0 {
			j.BytesPerSecond = float64(bytesDone) / span
		}
		if s, ok := prev[t.ID]; ok && s.phase == p.Phase && p.UpdatedAt.After(s.at) {
			j.BytesPerSecond = float64(bytesDone-s.bytes) / p.UpdatedAt.Sub(s.at).Seconds()
		}
		j.Stalled = now.Sub(p.UpdatedAt) > stallAfter
	}
	if prev != nil {
		prev[t.ID] = sample{phase: p.Phase, bytes: bytesDone, at: p.UpdatedAt}
	}
	return j
}

// authPaused is the AuthGate's recorded reason, or "".
func (a *app) authPaused(cmd *cobra.Command) string {
	conn, err := a.redis(cmd)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	v, err := conn.Client.Get(ctx, jobs.AuthPausedKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return ""
	}
	return v
}

// progressSummary is one line about a job's progress or outcome.
func progressSummary(p jobs.Progress) string {
	var parts []string
	switch p.Phase {
	case "hashing":
		parts = append(parts, fmt.Sprintf("hashed %s of %s", bytesHuman(p.BytesHashed), bytesHuman(p.TotalBytes)))
		if p.CacheHit {
			parts = append(parts, "hashmap cache hit")
		}
	case "uploading":
		parts = append(parts, fmt.Sprintf("sent %d of %d missing blocks (%s)", p.BlocksSent, p.BlocksMissing, bytesHuman(p.BytesSent)))
		if p.BlocksTotal > 0 {
			parts = append(parts, fmt.Sprintf("%d blocks already on the server", p.BlocksTotal-p.BlocksMissing))
		}
	default:
		if p.Phase != "" {
			parts = append(parts, p.Phase)
		}
		if p.BlocksTotal > 0 || p.BlocksSent > 0 {
			parts = append(parts, fmt.Sprintf("%d/%d blocks sent", p.BlocksSent, p.BlocksTotal))
		}
		if p.ImageID != "" {
			parts = append(parts, "image "+p.ImageID)
		}
		if len(p.Changes) > 0 {
			parts = append(parts, strings.Join(p.Changes, ", "))
		}
	}
	if p.Note != "" {
		parts = append(parts, p.Note)
	}
	return strings.Join(parts, "; ")
}

func renderStatus(doc *StatusDoc) []byte {
	var buf bytes.Buffer
	now := doc.Time
	fmt.Fprintf(&buf, "imagesync status · redis %s · node %s · %s\n", escapeText(doc.Redis), escapeText(doc.Node), now.Local().Format("2006-01-02 15:04:05"))
	if doc.AuthPaused != "" {
		fmt.Fprintf(&buf, "\n!! QUEUES PAUSED: the cloud rejected the token. Write a valid token to cloud.token_file (read again without a restart), or set cloud.token / SYNCD_TOKEN and restart syncd.\n!! %s\n", escapeText(oneLine(doc.AuthPaused)))
	}
	if len(doc.DownNodes) > 0 {
		fmt.Fprintln(&buf)
		for _, n := range doc.DownNodes {
			fmt.Fprintln(&buf, waitLine(now, n.Node, n.LastSeen, n.Waiting))
		}
	}
	if len(doc.Workers) == 0 {
		fmt.Fprintln(&buf, "\nworkers: none connected to this Redis (is syncd running?)")
	} else {
		fmt.Fprintln(&buf, "\nworkers:")
		for _, w := range doc.Workers {
			if w.Node != "" {
				fmt.Fprintf(&buf, "  node %s:", escapeText(w.Node))
			}
			fmt.Fprintf(&buf, "  %s pid %d  %s  %d/%d busy  queues %s  up %s\n", escapeText(w.Host), w.PID, escapeText(w.Status), w.Busy, w.Concurrency,
				escapeText(strings.Join(w.Queues, ",")), upFor(now, w.StartedAt))
		}
	}
	fmt.Fprintln(&buf)
	t := newTable(&buf, "QUEUE", "PENDING", "ACTIVE", "SCHEDULED", "RETRY", "FAILED", "DONE", "TODAY OK/FAILED", "LATENCY")
	for _, q := range doc.Queues {
		name := q.Queue
		if q.Paused {
			name += " (paused)"
		}
		t.row(append([]string{name}, countCells(q.Counts, durHuman(time.Duration(q.LatencySeconds*float64(time.Second))))...)...)
	}
	t.row(append([]string{"total"}, countCells(doc.Totals, "")...)...)
	t.flush()

	fmt.Fprintln(&buf)
	if len(doc.Active) == 0 {
		fmt.Fprintln(&buf, "No jobs running.")
	} else {
		fmt.Fprintln(&buf, "RUNNING")
		t := newTable(&buf)
		for _, j := range doc.Active {
			frac := -1.0
			if j.Fraction != nil {
				frac = *j.Fraction
			}
			pct, amount := "", ""
			if j.Fraction != nil {
				pct = fmt.Sprintf("%3.0f%%", frac*100)
			}
			switch j.Unit {
			case "bytes":
				amount = fmt.Sprintf("%s / %s", bytesHuman(j.Done), bytesHuman(j.Total))
			case "blocks":
				amount = fmt.Sprintf("%d / %d blocks", j.Done, j.Total)
			}
			phase := j.Phase
			if j.Stalled {
				phase += " (stalled?)"
			}
			if j.Orphaned {
				phase += " (orphaned)"
			}
			t.row("  "+shortType(j.Type), j.subject(), phase, bar(frac, 24), pct, amount,
				rateHuman(j.BytesPerSecond), durHuman(time.Duration(j.ElapsedSeconds*float64(time.Second))))
		}
		t.flush()
	}

	if len(doc.Failures) > 0 {
		fmt.Fprintln(&buf, "\nRECENT FAILURES")
		for _, f := range doc.Failures {
			when := "-"
			if f.LastFailedAt != nil {
				when = ago(now, *f.LastFailedAt)
			}
			state := "failed permanently"
			if f.State == "retry" {
				state = fmt.Sprintf("will retry (%d/%d)", f.Retried, f.MaxRetry)
				if f.NextProcessAt != nil {
					state += " " + ago(now, *f.NextProcessAt)
				}
			}
			fmt.Fprintf(&buf, "  %s  %s %s  %s  [%s]\n    %s\n", when, escapeText(shortType(f.Type)), escapeText(f.subject()), state, escapeText(f.ID), escapeText(oneLine(f.LastError)))
		}
		if doc.Totals.Archived > 0 {
			fmt.Fprintln(&buf, "  (syncctl list failed · syncctl inspect ID · syncctl retry ID|--all)")
		}
	}
	renderSkipped(&buf, doc.Skipped)
	if len(doc.DeployWarnings) > 0 {
		fmt.Fprintf(&buf, "\nNOT DEPLOYABLE AS REGISTERED (%d image(s): snf-image lacks what it needs to deploy them)\n", len(doc.DeployWarnings))
		for _, w := range doc.DeployWarnings {
			fmt.Fprintf(&buf, "  %s  %s\n", ago(now, w.At), escapeText(w.Location))
			for _, m := range w.Warnings {
				fmt.Fprintf(&buf, "    %s\n", escapeText(oneLine(m)))
			}
		}
		fmt.Fprintln(&buf, "  (syncctl plan --explain shows where each value comes from; syncctl inspect FILE what the disk holds)")
	}
	for _, q := range doc.QuotaUnreadable {
		fmt.Fprintf(&buf, "\nquota: node %s cannot read the storage quota (since %s): uploads go ahead without the pre-check, and a full quota is reported by the server (413).\n  %s\n",
			escapeText(q.Node), q.Since.Local().Format("2006-01-02 15:04"), escapeText(oneLine(q.Reason)))
	}
	return buf.Bytes()
}

// maxSkippedShown bounds the skipped files listed in the table view.
const maxSkippedShown = 20

func renderSkipped(buf *bytes.Buffer, skipped []jobs.SkippedFile) {
	if len(skipped) == 0 {
		return
	}
	fmt.Fprintln(buf, "\nNOT USED (files under the watch roots that syncd skipped)")
	for _, f := range skipped[:min(len(skipped), maxSkippedShown)] {
		fmt.Fprintf(buf, "  %s  %s\n    %s\n", escapeText(f.Node), escapeText(f.Path), escapeText(oneLine(f.Reason)))
	}
	if n := len(skipped) - maxSkippedShown; n > 0 {
		fmt.Fprintf(buf, "  … and %d more (syncctl status --json lists them all)\n", n)
	}
}

func countCells(c Counts, latency string) []string {
	return []string{
		fmt.Sprint(c.Pending), fmt.Sprint(c.Active), fmt.Sprint(c.Scheduled), fmt.Sprint(c.Retry),
		fmt.Sprint(c.Archived), fmt.Sprint(c.Completed), fmt.Sprintf("%d/%d", c.ProcessedToday, c.FailedToday), orDash(latency),
	}
}

func upFor(now time.Time, started *time.Time) string {
	if started == nil {
		return "-"
	}
	return durHuman(now.Sub(*started))
}
