package ctl

import (
	"encoding/json"
	"path"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/imagesync/imagesync/internal/jobs"
)

// Task is how syncctl shows one asynq task (list, status failures, and the
// base of inspect):
//
//	{
//	  "id": "upload:3f…", "queue": "upload:node1", "type": "image:upload",
//	  "state": "archived",              // pending|active|scheduled|retry|archived|completed
//	  "path": "images/a/b.diskdump",    // watch root + rel_path; "" for republish
//	  "location": "/images/a/b.diskdump", // /container/object; "" for republish
//	  "retried": 3, "max_retry": 12,
//	  "last_error": "…", "last_failed_at": "2025-01-02T03:04:05Z" | null,
//	  "next_process_at": … | null,      // scheduled and retry tasks only
//	  "completed_at": … | null,
//	  "orphaned": false,                // active with no live worker
//	  "progress": {…jobs.Progress…} | null
//	}
type Task struct {
	ID            string         `json:"id"`
	Queue         string         `json:"queue"`
	Type          string         `json:"type"`
	State         string         `json:"state"`
	Path          string         `json:"path"`
	Location      string         `json:"location"`
	Retried       int            `json:"retried"`
	MaxRetry      int            `json:"max_retry"`
	LastError     string         `json:"last_error"`
	LastFailedAt  *time.Time     `json:"last_failed_at"`
	NextProcessAt *time.Time     `json:"next_process_at"`
	CompletedAt   *time.Time     `json:"completed_at"`
	Orphaned      bool           `json:"orphaned"`
	Progress      *jobs.Progress `json:"progress"`
}

// TaskDetail is inspect's document: Task plus the raw payload and result
// and the task's limits.
//
//	{ …Task…, "payload": {…} | "<non-JSON payload as text>",
//	  "result": {…} | "<text>" | null, "timeout_seconds": 600,
//	  "deadline": … | null, "retention_seconds": 86400 }
type TaskDetail struct {
	Task
	Payload          json.RawMessage `json:"payload"`
	Result           json.RawMessage `json:"result"`
	TimeoutSeconds   float64         `json:"timeout_seconds"`
	Deadline         *time.Time      `json:"deadline"`
	RetentionSeconds float64         `json:"retention_seconds"`
}

// payloadRef is the part every image task payload shares.
type payloadRef struct {
	Root    string `json:"root"`
	RelPath string `json:"rel_path"`
	Object  string `json:"object"`
	Cont    string `json:"container"`
	Tick    string `json:"tick"`
}

func taskView(ti *asynq.TaskInfo) Task {
	t := Task{
		ID: ti.ID, Queue: ti.Queue, Type: ti.Type, State: ti.State.String(),
		Retried: ti.Retried, MaxRetry: ti.MaxRetry, LastError: ti.LastErr,
		LastFailedAt: timePtr(ti.LastFailedAt), NextProcessAt: timePtr(ti.NextProcessAt),
		CompletedAt: timePtr(ti.CompletedAt), Orphaned: ti.IsOrphaned,
	}
	// asynq reports "now" as a pending task's next run, a different value on
	// every read; only scheduled and retrying tasks have a time to wait for.
	if ti.State != asynq.TaskStateScheduled && ti.State != asynq.TaskStateRetry {
		t.NextProcessAt = nil
	}
	var p payloadRef
	if json.Unmarshal(ti.Payload, &p) == nil {
		if p.RelPath != "" {
			t.Path = path.Join(strings.TrimSuffix(p.Root, "/"), p.RelPath)
		}
		if p.Cont != "" {
			t.Location = "/" + p.Cont + "/" + p.Object
		}
	}
	if pr, ok := jobs.DecodeProgress(ti.Result); ok {
		t.Progress = &pr
	}
	return t
}

func taskDetail(ti *asynq.TaskInfo) TaskDetail {
	return TaskDetail{
		Task:             taskView(ti),
		Payload:          rawOrString(ti.Payload),
		Result:           rawOrString(ti.Result),
		TimeoutSeconds:   ti.Timeout.Seconds(),
		Deadline:         timePtr(ti.Deadline),
		RetentionSeconds: ti.Retention.Seconds(),
	}
}

// rawOrString embeds JSON as is and anything else as a JSON string, so the
// document stays valid whatever a task carries.
func rawOrString(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}

// subject is what a task is about, for tables.
func (t Task) subject() string {
	switch {
	case t.Path != "":
		return t.Path
	case t.Location != "":
		return t.Location
	}
	return "-"
}

// shortType drops the "image:" prefix in tables.
func shortType(typ string) string { return strings.TrimPrefix(typ, "image:") }

// parseState accepts asynq's state names and the words people use.
func parseState(s string) (asynq.TaskState, bool) {
	switch strings.ToLower(s) {
	case "pending", "queued":
		return asynq.TaskStatePending, true
	case "active", "running":
		return asynq.TaskStateActive, true
	case "scheduled":
		return asynq.TaskStateScheduled, true
	case "retry", "retrying":
		return asynq.TaskStateRetry, true
	case "archived", "failed":
		return asynq.TaskStateArchived, true
	case "completed", "done":
		return asynq.TaskStateCompleted, true
	}
	return 0, false
}

var stateNames = []string{"pending", "active", "scheduled", "retry", "archived", "completed"}
