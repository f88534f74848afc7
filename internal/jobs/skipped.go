package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Skipped is what a node's watcher could not use under its watch roots
// (symlinks its policy refuses, broken links, unreadable files and
// directories), kept in Redis so that `syncctl status` shows it from any
// host. Each node has one hash, field = the file's absolute path, value =
// a SkippedFile as JSON. The daemon keeps it in step with the watcher: a
// problem is added when reported, deleted when cleared, and each full scan
// of a root rewrites that root's entries, so nothing stale outlives a
// rescan. The key expires if the node stops refreshing it.
type Skipped struct {
	rdb  redis.UniversalClient
	node string
	ttl  time.Duration
}

// SkippedFile is one entry.
type SkippedFile struct {
	Node   string    `json:"node"`
	Root   string    `json:"root"`   // the watch root as configured
	Path   string    `json:"path"`   // absolute
	Reason string    `json:"reason"` // what is wrong and what to do
	Since  time.Time `json:"since"`
}

const skippedPrefix = "imagesync:skipped:"

// skippedNodesKey is the set of nodes that recorded skipped files, so that
// listing them reads one key per node: a SCAN for skippedPrefix* walks the
// whole keyspace, which holds every retained task (tens of thousands after
// a large batch), and `syncctl status` lists the skipped files each time.
const skippedNodesKey = "imagesync:skipped-nodes"

// MaxSkipped bounds the entries kept per node: a folder full of broken
// links must not fill Redis. status says when some were left out.
const MaxSkipped = 1000

// NewSkipped works on the node's entries; ttl (at least a few rescan
// periods, 0 for none) lets the entries of a node that is gone expire.
func NewSkipped(rdb redis.UniversalClient, node string, ttl time.Duration) *Skipped {
	return &Skipped{rdb: rdb, node: node, ttl: ttl}
}

func (s *Skipped) key() string { return skippedPrefix + s.node }

func (s *Skipped) encode(f SkippedFile) string {
	f.Node = s.node
	b, _ := json.Marshal(f)
	return string(b)
}

// index names this node in skippedNodesKey. It is its own command, not part
// of the writes' transaction: on a Redis Cluster the two keys live in
// different slots.
func (s *Skipped) index(ctx context.Context) error {
	return s.rdb.SAdd(ctx, skippedNodesKey, s.node).Err()
}

func (s *Skipped) expire(ctx context.Context, p redis.Pipeliner) {
	if s.ttl > 0 {
		p.PExpire(ctx, s.key(), s.ttl)
	}
}

// Add records one file (replacing what was recorded for its path), unless
// MaxSkipped entries are there already.
func (s *Skipped) Add(ctx context.Context, f SkippedFile) error {
	n, err := s.rdb.HLen(ctx, s.key()).Result()
	if err != nil {
		return fmt.Errorf("recording a skipped file: %w", err)
	}
	if n >= MaxSkipped {
		return nil
	}
	if err := s.index(ctx); err != nil {
		return fmt.Errorf("recording a skipped file: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.key(), f.Path, s.encode(f))
		s.expire(ctx, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording a skipped file: %w", err)
	}
	return nil
}

// Remove forgets the entry for path.
func (s *Skipped) Remove(ctx context.Context, path string) error {
	if err := s.rdb.HDel(ctx, s.key(), path).Err(); err != nil {
		return fmt.Errorf("forgetting a skipped file: %w", err)
	}
	return nil
}

// SetRoot makes root's entries exactly files (an entry already there keeps
// its Since), and refreshes the expiry.
func (s *Skipped) SetRoot(ctx context.Context, root string, files []SkippedFile) error {
	cur, err := s.rdb.HGetAll(ctx, s.key()).Result()
	if err != nil {
		return fmt.Errorf("reading skipped files: %w", err)
	}
	want := map[string]SkippedFile{}
	for _, f := range files {
		want[f.Path] = f
	}
	var drop []string
	kept := 0
	for path, v := range cur {
		var old SkippedFile
		if json.Unmarshal([]byte(v), &old) != nil || old.Root != root {
			kept++
			continue
		}
		if f, ok := want[path]; ok && f.Reason == old.Reason {
			f.Since = old.Since
			want[path] = f
			continue
		}
		drop = append(drop, path)
	}
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if len(paths) > 0 {
		if err := s.index(ctx); err != nil {
			return fmt.Errorf("recording skipped files: %w", err)
		}
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(drop) > 0 {
			p.HDel(ctx, s.key(), drop...)
		}
		for _, path := range paths[:min(len(paths), max(0, MaxSkipped-kept))] {
			p.HSet(ctx, s.key(), path, s.encode(want[path]))
		}
		s.expire(ctx, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording skipped files: %w", err)
	}
	return nil
}

// ListSkipped returns every node's skipped files, by node then path. It
// reads one hash per node named in skippedNodesKey (a node whose hash has
// expired stays named there: a handful of names, and removing one could
// race with that node recording a file).
func ListSkipped(ctx context.Context, rdb redis.UniversalClient) ([]SkippedFile, error) {
	nodes, err := rdb.SMembers(ctx, skippedNodesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("listing skipped files: %w", err)
	}
	out := []SkippedFile{}
	for _, node := range nodes {
		m, err := rdb.HGetAll(ctx, skippedPrefix+node).Result()
		if err != nil {
			return nil, fmt.Errorf("listing skipped files: %w", err)
		}
		for _, v := range m {
			var f SkippedFile
			if json.Unmarshal([]byte(v), &f) == nil {
				out = append(out, f)
			}
		}
	}
	slices.SortFunc(out, func(a, b SkippedFile) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}
