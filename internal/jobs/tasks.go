// Package jobs defines imagesync's asynq tasks — upload, register, publish
// and the republish sweep — with their versioned payloads, deterministic task
// ids, queues, timeouts, error classification and handlers.
package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Task types.
const (
	TypeUpload    = "image:upload"
	TypeRegister  = "image:register"
	TypePublish   = "image:publish"
	TypeRepublish = "image:republish"
	// TypeUnregister removes the registration of an image whose file was
	// deleted (only for watch roots with unregister_deleted).
	TypeUnregister = "image:unregister"
)

// Queues. A job that reads a node's files (the image, its metafiles and
// templates) runs on that node: several nodes often watch the same path with
// different content there, so on any other node it would read the wrong
// files. Jobs of shared roots (storage every node reads) and jobs that need
// nothing but their payload run on any node.
//
//	upload:<node>  uploads from <node>'s own roots          (served by <node>)
//	node:<node>    register, unregister and the sweep of
//	               <node>'s own roots                        (served by <node>)
//	upload         uploads from shared roots                 (served by every node)
//	default        publish; register, unregister and the
//	               sweep of shared roots                     (served by every node)
//
// syncd before issue 11 put every register, unregister and sweep on
// default; a task like that is recognised by its payload (no "node" for a
// root that is not shared here) and forwarded (see route.go).
const (
	QueueDefault      = "default"
	QueueSharedUpload = "upload"
	uploadQueuePrefix = "upload:"
	nodeQueuePrefix   = "node:"
)

// UploadQueue is the per-node upload queue.
func UploadQueue(node string) string { return uploadQueuePrefix + node }

// NodeQueue is the per-node queue of the jobs other than uploads that read
// the node's files.
func NodeQueue(node string) string { return nodeQueuePrefix + node }

// QueueNode returns the node a per-node queue belongs to; ok is false for
// the queues every node serves.
func QueueNode(queue string) (node string, ok bool) {
	for _, prefix := range []string{uploadQueuePrefix, nodeQueuePrefix} {
		if n, found := strings.CutPrefix(queue, prefix); found && n != "" {
			return n, true
		}
	}
	return "", false
}

// PayloadVersion is bumped when a payload changes incompatibly; handlers
// reject versions they do not know with a permanent error.
const PayloadVersion = 1

// ImageRef names one image file under a watch root and its remote object.
// It never carries credentials.
type ImageRef struct {
	Root      string `json:"root"`     // the watch root's dir as configured
	RelPath   string `json:"rel_path"` // '/'-separated, relative to Root
	Container string `json:"container"`
	Object    string `json:"object"`
	// Node is the node whose files these are, and Shared is set instead
	// for a shared root (any node reads it). A task queued by a syncd older
	// than issue 11 has neither.
	Node   string `json:"node,omitempty"`
	Shared bool   `json:"shared,omitempty"`
}

// Location renders "/container/object" for logs and ids.
func (r ImageRef) Location() string { return "/" + r.Container + "/" + r.Object }

// UploadPayload is image:upload's payload.
type UploadPayload struct {
	V int `json:"v"`
	ImageRef
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	Dev     uint64 `json:"dev"`
	Inode   uint64 `json:"inode"`
	// Force re-hashes (ignoring the cache) and re-registers even when the
	// image already matches (syncctl resync).
	Force bool `json:"force,omitempty"`
}

// RegisterPayload is image:register's payload. The desired metadata is not
// in the payload: the handler recomputes it from the current templates, so a
// queued registration never applies stale metadata.
type RegisterPayload struct {
	V int `json:"v"`
	ImageRef
	// File identifies the local file's content (size, mtime, device, inode).
	File string `json:"file"`
	// ObjectHash is the Merkle hash the upload produced, when known.
	ObjectHash string `json:"object_hash"`
	// ObjectUUID is the Pithos object UUID, which is the image id.
	ObjectUUID string `json:"object_uuid,omitempty"`
	// MetaFingerprint hashes the metafile chain and config defaults the
	// enqueuer saw; it makes the task id change when metadata changes.
	MetaFingerprint string `json:"meta_fingerprint"`
	Force           bool   `json:"force,omitempty"`
	Reason          string `json:"reason,omitempty"` // upload, metafile, republish, resync
}

// PublishPayload is image:publish's payload.
type PublishPayload struct {
	V int `json:"v"`
	ImageRef
	ImageID string   `json:"image_id"`
	Public  bool     `json:"public"`
	Members []string `json:"members"`
	// After is the id of the registration this publish follows: Plankton
	// resets permissions on every registration, so each one needs its own publish.
	After string `json:"after"`
}

// UnregisterPayload is image:unregister's payload.
type UnregisterPayload struct {
	V int `json:"v"`
	ImageRef
	// RemovedAt is when the watcher saw the file go (RFC 3339): each
	// removal is its own task.
	RemovedAt string `json:"removed_at"`
}

// RepublishPayload is image:republish's payload.
type RepublishPayload struct {
	V      int    `json:"v"`
	Force  bool   `json:"force,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
	Tick   string `json:"tick,omitempty"` // the schedule tick or "manual-<time>"
	// Scope is which roots the sweep covers: SweepNodeRoots (Node's own) or
	// SweepSharedRoots. "" (a syncd older than issue 11) means every node's
	// roots: such a task is split into one sweep per node and one of the
	// shared roots.
	Scope SweepScope `json:"scope,omitempty"`
	Node  string     `json:"node,omitempty"`
}

// SweepScope selects the watch roots a sweep covers.
type SweepScope string

// Sweep scopes.
const (
	SweepAllRoots    SweepScope = ""       // every root of this node's configuration
	SweepNodeRoots   SweepScope = "node"   // the roots that are not shared
	SweepSharedRoots SweepScope = "shared" // the shared roots
)

func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// Task ids are kind + remote location + content fingerprint, so the same work
// discovered twice (events, rescans, restarts, several daemons) is one task.

// UploadTaskID identifies uploading this content of this file to this object.
func UploadTaskID(p UploadPayload) string {
	return "upload:" + fingerprint(p.Location(), fmt.Sprint(p.Size, p.MtimeNs, p.Dev, p.Inode))
}

// RegisterTaskID identifies registering this object content with this
// metadata. The uploaded hash is part of it: a registration queued by a
// metafile edit before the upload finished ("not uploaded yet") must not
// take the id of the one the upload queues when it is done.
func RegisterTaskID(p RegisterPayload) string {
	return "register:" + fingerprint(p.Location(), p.File, p.MetaFingerprint, p.ObjectHash)
}

// PublishTaskID identifies publishing after one registration with one ACL.
func PublishTaskID(p PublishPayload) string {
	return "publish:" + fingerprint(p.Location(), p.ImageID, fmt.Sprint(p.Public), strings.Join(p.Members, ","), p.After)
}

// UnregisterTaskID identifies one removal of one image file.
func UnregisterTaskID(p UnregisterPayload) string {
	return "unregister:" + fingerprint(p.Location(), p.RemovedAt)
}

// RepublishTaskID identifies one sweep per schedule tick across all daemons.
// A node's sweep of one tick is one task however many daemons enqueue it.
func RepublishTaskID(p RepublishPayload) string {
	if p.Scope == SweepAllRoots {
		return "republish:" + fingerprint(p.Tick, fmt.Sprint(p.Force, p.DryRun))
	}
	return "republish:" + fingerprint(p.Tick, fmt.Sprint(p.Force, p.DryRun), string(p.Scope), p.Node)
}

// Decode parses a payload and checks its version.
func Decode[T any](data []byte, v *T, version func(*T) int) error {
	if err := json.Unmarshal(data, v); err != nil {
		return permanent(fmt.Errorf("malformed task payload: %w", err))
	}
	if got := version(v); got != PayloadVersion {
		return permanent(fmt.Errorf("task payload version %d is not supported (want %d): was it enqueued by a newer imagesync?", got, PayloadVersion))
	}
	return nil
}

// UploadTimeout scales with the file: asynq's 30-minute default would kill a
// multi-GB upload on a slow link. It allows 10 minutes plus 1 MiB/s.
func UploadTimeout(size int64) time.Duration {
	d := 10*time.Minute + time.Duration(size/(1<<20))*time.Second
	return max(d, 30*time.Minute)
}

// Retention keeps finished tasks visible to syncctl (and their ids reserved,
// which dedups repeated discoveries) for this long.
const Retention = 24 * time.Hour
