package jobs

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/hibiken/asynq"
)

// Progress is what a running job reports through asynq's ResultWriter (the
// task's "result" field) and what `syncctl status` shows. On completion it
// holds the job's outcome.
type Progress struct {
	Phase         string    `json:"phase"` // hashing, uploading, finalizing, registering, publishing, done
	Path          string    `json:"path,omitempty"`
	Object        string    `json:"object,omitempty"`
	TotalBytes    int64     `json:"total_bytes,omitempty"`
	BytesHashed   int64     `json:"bytes_hashed,omitempty"`
	BlocksTotal   int64     `json:"blocks_total,omitempty"`
	BlocksMissing int64     `json:"blocks_missing,omitempty"`
	BlocksSent    int64     `json:"blocks_sent,omitempty"`
	BytesSent     int64     `json:"bytes_sent,omitempty"`
	CacheHit      bool      `json:"cache_hit,omitempty"`
	ObjectHash    string    `json:"object_hash,omitempty"`
	ImageID       string    `json:"image_id,omitempty"`
	Changes       []string  `json:"changes,omitempty"`
	Warnings      []string  `json:"warnings,omitempty"` // a registration's deployability warnings
	Note          string    `json:"note,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// DecodeProgress parses a task result; ok is false when there is none.
func DecodeProgress(b []byte) (Progress, bool) {
	var p Progress
	if len(b) == 0 || json.Unmarshal(b, &p) != nil {
		return Progress{}, false
	}
	return p, true
}

// Phases of the register, publish and republish jobs (uploads report
// pithos' hashing, uploading and finalizing first).
const (
	PhaseRegistering   = "registering"
	PhasePublishing    = "publishing"
	PhaseSweeping      = "sweeping"
	PhaseUnregistering = "unregistering"
	PhaseDone          = "done"
)

// resultWriter is the task's ResultWriter, or nil (not a typed nil) for a
// task that did not come from a server, such as one built in a test.
func resultWriter(t interface{ ResultWriter() *asynq.ResultWriter }) interface{ Write([]byte) (int, error) } {
	if rw := t.ResultWriter(); rw != nil {
		return rw
	}
	return nil
}

// progressWriter rate-limits writes of Progress to the task's result. A
// job that is over within the first interval writes once, its outcome; a
// longer one is shown from the end of that interval on, so that a folder of
// small images does not cost Redis a write per job for progress nobody
// could have seen.
type progressWriter struct {
	mu    sync.Mutex
	w     interface{ Write([]byte) (int, error) }
	every time.Duration
	last  time.Time
	cur   Progress
	first *time.Timer
}

func newProgressWriter(w interface{ Write([]byte) (int, error) }, p Progress) *progressWriter {
	now := time.Now()
	p.StartedAt, p.UpdatedAt = now, now
	pw := &progressWriter{w: w, every: 500 * time.Millisecond, cur: p, last: now}
	if w != nil {
		// A write after the job ended fails harmlessly (its context is done).
		pw.mu.Lock()
		pw.first = time.AfterFunc(pw.every, pw.flush)
		pw.mu.Unlock()
	}
	return pw
}

// update applies f and writes if enough time passed (or force).
func (pw *progressWriter) update(force bool, f func(*Progress)) {
	if pw == nil {
		return
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	f(&pw.cur)
	if force || time.Since(pw.last) >= pw.every {
		pw.flushLocked()
	}
}

func (pw *progressWriter) flush() {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.flushLocked()
}

func (pw *progressWriter) flushLocked() {
	if pw.first != nil {
		pw.first.Stop()
	}
	if pw.w == nil {
		return
	}
	pw.cur.UpdatedAt = time.Now()
	b, err := json.Marshal(pw.cur)
	if err == nil {
		_, _ = pw.w.Write(b) // best effort: progress must never fail a job
	}
	pw.last = time.Now()
}
