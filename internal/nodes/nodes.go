// Package nodes keeps the record of the syncd nodes that share one Redis.
// Every syncd writes, every few seconds, what it is (node name, host, pid),
// which watch roots it has and which queues it serves; syncctl reads that
// together with asynq's list of live servers to show which nodes are up,
// how busy they are, and which work waits for a node that is down. The
// daemons read the names to reach every node's queue (see jobs.Deps.Nodes).
package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/jobs"
)

// Key is the Redis hash holding one JSON Record per node name. One key (not
// one per node) so that listing needs no SCAN and works the same on every
// Redis deployment.
const Key = "imagesync:nodes"

const (
	// HeartbeatInterval is how often a syncd rewrites its record.
	HeartbeatInterval = 5 * time.Second
	// ForgetAfter drops the record of a node not seen for this long: a
	// host taken out of service leaves the list by itself.
	ForgetAfter = 7 * 24 * time.Hour
)

// Root is a watch root as the node has it configured.
type Root struct {
	Dir       string `json:"dir"`
	Container string `json:"container"`
	Prefix    string `json:"prefix"`
	Shared    bool   `json:"shared"`
}

// Record is what a syncd writes about itself.
type Record struct {
	Node      string     `json:"node"`
	Host      string     `json:"host"`
	PID       int        `json:"pid"`
	StartedAt time.Time  `json:"started_at"`
	Heartbeat time.Time  `json:"heartbeat"`
	StoppedAt *time.Time `json:"stopped_at"` // set by a clean shutdown
	Roots     []Root     `json:"roots"`
	Queues    []string   `json:"queues"`
	// Republish and Timezone are the node's schedule.
	Republish string `json:"republish"`
	Timezone  string `json:"timezone"`
}

// RootsOf lists cfg's watch roots as a Record holds them.
func RootsOf(ws []config.Watch) []Root {
	out := make([]Root, len(ws))
	for i, w := range ws {
		out[i] = Root{Dir: w.Dir, Container: w.Container, Prefix: w.Prefix, Shared: w.Shared}
	}
	return out
}

// Write stores rec.
func Write(ctx context.Context, rdb redis.UniversalClient, rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return rdb.HSet(ctx, Key, rec.Node, b).Err()
}

// Records lists the stored records by node name, dropping (and deleting)
// those not seen for ForgetAfter.
func Records(ctx context.Context, rdb redis.UniversalClient, now time.Time) ([]Record, error) {
	m, err := rdb.HGetAll(ctx, Key).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the node list: %w", err)
	}
	out := make([]Record, 0, len(m))
	for name, v := range m {
		var rec Record
		if json.Unmarshal([]byte(v), &rec) != nil || now.Sub(rec.Heartbeat) > ForgetAfter {
			_ = rdb.HDel(ctx, Key, name).Err()
			continue
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// Forget deletes a node's record (syncctl nodes --forget).
func Forget(ctx context.Context, rdb redis.UniversalClient, node string) (bool, error) {
	n, err := rdb.HDel(ctx, Key, node).Result()
	return n > 0, err
}

// Heartbeat writes rec now and every interval until ctx is done, then
// records the clean stop. Redis errors are logged once per outage and
// retried on the next beat.
func Heartbeat(ctx context.Context, rdb redis.UniversalClient, rec Record, interval time.Duration, log *zap.Logger) {
	failing := false
	beat := func(ctx context.Context) {
		rec.Heartbeat = time.Now().UTC()
		err := Write(ctx, rdb, rec)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			log.Warn("cannot record this node's heartbeat in Redis", zap.Error(err))
			failing = true
		case err == nil:
			failing = false
		}
	}
	beat(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			now := time.Now().UTC()
			rec.StoppedAt = &now
			beat(sctx)
			cancel()
			return
		case <-t.C:
			beat(ctx)
		}
	}
}

// Node is one node as syncctl shows it: its record (if it wrote one) and the
// asynq servers serving its queues now.
type Node struct {
	Record
	// Up: a syncd of this node is connected now (asynq lists a live server
	// serving its queues; a killed one drops out within ~10 s).
	Up bool `json:"up"`
	// LastSeen is its last heartbeat, or while it is up now; nil if it
	// never wrote a record (a syncd older than issue 11 that left a queue).
	LastSeen    *time.Time `json:"last_seen"`
	Busy        int        `json:"busy"`        // tasks its workers are running
	Concurrency int        `json:"concurrency"` // workers of its servers
	Servers     []Server   `json:"servers"`
}

// Server is one live asynq server of a node (syncd runs two: uploads and the rest).
type Server struct {
	Host        string   `json:"host"`
	PID         int      `json:"pid"`
	Queues      []string `json:"queues"`
	Concurrency int      `json:"concurrency"`
	Busy        int      `json:"busy"`
	Status      string   `json:"status"`
}

// List combines the records, the live asynq servers and the per-node queues
// Redis knows into one entry per node, by name.
func List(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, now time.Time) ([]Node, error) {
	recs, err := Records(ctx, rdb, now)
	if err != nil {
		return nil, err
	}
	byName := map[string]*Node{}
	get := func(name string) *Node {
		if n, ok := byName[name]; ok {
			return n
		}
		n := &Node{Record: Record{Node: name, Roots: []Root{}, Queues: []string{}}, Servers: []Server{}}
		byName[name] = n
		return n
	}
	for _, r := range recs {
		n := get(r.Node)
		n.Record = r
		if n.Roots == nil {
			n.Roots = []Root{}
		}
		if n.Queues == nil {
			n.Queues = []string{}
		}
		hb := r.Heartbeat
		n.LastSeen = &hb
	}
	servers, err := insp.Servers()
	if err != nil {
		return nil, fmt.Errorf("listing workers: %w", err)
	}
	for _, s := range servers {
		name := ""
		for q := range s.Queues {
			if n, ok := jobs.QueueNode(q); ok {
				name = n
				break
			}
		}
		if name == "" {
			continue // serves only the queues of every node: not one node's
		}
		n := get(name)
		srv := Server{Host: s.Host, PID: s.PID, Concurrency: s.Concurrency, Busy: len(s.ActiveWorkers), Status: s.Status, Queues: []string{}}
		for q := range s.Queues {
			srv.Queues = append(srv.Queues, q)
		}
		slices.Sort(srv.Queues)
		n.Servers = append(n.Servers, srv)
		n.Up = true
		n.Busy += srv.Busy
		n.Concurrency += srv.Concurrency
		if n.Host == "" {
			n.Host, n.PID = s.Host, s.PID
		}
		if len(n.Record.Queues) == 0 {
			for _, q := range srv.Queues {
				if !slices.Contains(n.Record.Queues, q) {
					n.Record.Queues = append(n.Record.Queues, q)
				}
			}
		}
	}
	queues, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	for _, q := range queues {
		if name, ok := jobs.QueueNode(q); ok {
			get(name)
		}
	}
	out := make([]Node, 0, len(byName))
	for _, n := range byName {
		if n.Up {
			t := now.UTC()
			n.LastSeen = &t
		}
		slices.SortFunc(n.Servers, func(a, b Server) int { return a.PID - b.PID })
		slices.Sort(n.Record.Queues)
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// Names lists every node known to this Redis: those with a record and those
// that only left a per-node queue (a syncd older than issue 11).
func Names(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector) ([]string, error) {
	recs, err := Records(ctx, rdb, time.Now())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Node)
	}
	queues, err := insp.Queues()
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	for _, q := range queues {
		if n, ok := jobs.QueueNode(q); ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
