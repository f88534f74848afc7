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

// Queues. Uploads need the file, so they run on the node that has it
// (UploadQueue(node)) unless the watch root is shared by every node.
const (
	QueueDefault      = "default"
	QueueSharedUpload = "upload"
	uploadQueuePrefix = "upload:"
)

// UploadQueue is the per-node upload queue.
func UploadQueue(node string) string { return uploadQueuePrefix + node }

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
}

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
func RepublishTaskID(p RepublishPayload) string {
	return "republish:" + fingerprint(p.Tick, fmt.Sprint(p.Force, p.DryRun))
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
