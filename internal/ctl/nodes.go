package ctl

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/nodes"
)

// NodesDoc is `nodes --json`:
//
//	{ "time": "…",
//	  "nodes": [{"node": "build-1", "host": "…", "pid": 0, "started_at": "…",
//	             "heartbeat": "…", "stopped_at": null | "…",
//	             "roots": [{"dir", "container", "prefix", "shared"}],
//	             "queues": ["upload:build-1", "node:build-1", "upload", "default"],
//	             "republish": "0 3 * * *", "timezone": "UTC",
//	             "up": true, "last_seen": "…" | null, "busy": 0, "concurrency": 6,
//	             "servers": [{"host", "pid", "queues", "concurrency", "busy", "status"}],
//	             "waiting": {"uploads": 0, "other": 0}}] }
//
// "up" means a syncd of the node is connected now; "waiting" counts the
// unfinished tasks (pending, active, scheduled, retry) in the node's own
// queues, which only it can run.
type NodesDoc struct {
	Time  time.Time  `json:"time"`
	Nodes []NodeView `json:"nodes"`
}

// NodeView is one node with the work waiting for it.
type NodeView struct {
	nodes.Node
	Waiting Waiting `json:"waiting"`
}

// Waiting counts a node's unfinished tasks: uploads (upload:<node>) and the
// rest (node:<node>: registrations, unregistrations, sweeps).
type Waiting struct {
	Uploads int `json:"uploads"`
	Other   int `json:"other"`
}

func (w Waiting) total() int { return w.Uploads + w.Other }

func (a *app) nodesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "The syncd nodes sharing this Redis: up or down, roots, queues, load",
		Long: `List every syncd node that uses this Redis: whether it is up (a syncd of the
node is connected now), its host and pid, its watch roots (shared ones
marked), the queues it serves, how many of its workers are busy, its last
heartbeat, and the work waiting in its own queues, which only it can run.

Nodes write their record every 5 seconds; a node not seen for 7 days is
dropped from the list.`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			doc, err := a.nodes(cmd)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.emitJSON(doc)
			}
			return a.writeOut(renderNodes(doc))
		}),
	}
}

func (a *app) nodes(cmd *cobra.Command) (*NodesDoc, error) {
	conn, err := a.redis(cmd)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	list, err := nodes.List(cmd.Context(), conn.Client, a.insp, now)
	if err != nil {
		return nil, err
	}
	known, err := a.insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	doc := &NodesDoc{Time: now.UTC(), Nodes: []NodeView{}}
	for _, n := range list {
		w, err := waitingFor(a.insp, known, n.Record.Node)
		if err != nil {
			return nil, err
		}
		doc.Nodes = append(doc.Nodes, NodeView{Node: n, Waiting: w})
	}
	return doc, nil
}

// waitingFor counts the unfinished tasks in node's own queues (of the known
// ones: asynq has no record of a queue never used).
func waitingFor(insp *asynq.Inspector, known []string, node string) (Waiting, error) {
	var w Waiting
	for _, q := range []string{jobs.UploadQueue(node), jobs.NodeQueue(node)} {
		if !slices.Contains(known, q) {
			continue
		}
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			return w, fmt.Errorf("reading queue %s: %w", q, err)
		}
		n := info.Pending + info.Active + info.Scheduled + info.Retry
		if q == jobs.UploadQueue(node) {
			w.Uploads += n
		} else {
			w.Other += n
		}
	}
	return w, nil
}

func renderNodes(doc *NodesDoc) []byte {
	var buf bytes.Buffer
	if len(doc.Nodes) == 0 {
		fmt.Fprintln(&buf, "No syncd node has used this Redis yet.")
		return buf.Bytes()
	}
	t := newTable(&buf, "NODE", "STATE", "HOST/PID", "BUSY", "HEARTBEAT", "WAITING", "ROOTS", "QUEUES")
	for _, n := range doc.Nodes {
		state := "up"
		if !n.Up {
			state = "DOWN"
			if n.StoppedAt != nil {
				state = "stopped"
			}
		}
		host := "-"
		if n.Host != "" {
			host = fmt.Sprintf("%s/%d", n.Host, n.PID)
		}
		busy := "-"
		if n.Up {
			busy = fmt.Sprintf("%d/%d", n.Busy, n.Concurrency)
		}
		heartbeat := "never"
		if !n.Heartbeat.IsZero() {
			heartbeat = ago(doc.Time, n.Heartbeat)
		}
		roots := make([]string, len(n.Roots))
		for i, r := range n.Roots {
			roots[i] = r.Dir
			if r.Shared {
				roots[i] += " (shared)"
			}
		}
		t.row(escapeText(n.Record.Node), state, escapeText(host), busy, heartbeat, waitingText(n.Waiting),
			orDash(escapeText(strings.Join(roots, ", "))), orDash(escapeText(strings.Join(n.Queues, ","))))
	}
	t.flush()
	for _, n := range doc.Nodes {
		if !n.Up && n.Waiting.total() > 0 {
			fmt.Fprintf(&buf, "\n%s\n", waitLine(doc.Time, n.Record.Node, n.LastSeen, n.Waiting))
		}
	}
	return buf.Bytes()
}

func waitingText(w Waiting) string {
	if w.total() == 0 {
		return "-"
	}
	return fmt.Sprintf("%d up, %d other", w.Uploads, w.Other)
}

// waitLine says what waits for a node that is down, e.g. "12 uploads and 3
// other jobs wait for node build-2, last seen 4m00s ago".
func waitLine(now time.Time, node string, lastSeen *time.Time, w Waiting) string {
	var parts []string
	if w.Uploads > 0 {
		parts = append(parts, plural(w.Uploads, "upload", "uploads"))
	}
	if w.Other > 0 {
		parts = append(parts, plural(w.Other, "other job", "other jobs"))
	}
	verb := "wait"
	if w.total() == 1 {
		verb = "waits"
	}
	seen := "never seen by this Redis"
	if lastSeen != nil {
		seen = "last seen " + ago(now, *lastSeen)
	}
	return fmt.Sprintf("!! %s %s for node %s, which is down (%s): only that node has their files; start its syncd.",
		strings.Join(parts, " and "), verb, escapeText(node), seen)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
