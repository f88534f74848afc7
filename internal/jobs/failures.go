package jobs

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
)

// Failures keeps the archive (what `syncctl status` lists as failed) down to
// the problems that are still there: one archived task per image and kind of
// work, and none once that work succeeded later or the image file is gone.
//
// Each image (by its remote location) has a Redis hash whose fields are task
// types and whose values name the archived task ("queue\nid"). A newer
// failure of the same kind replaces the older one in the archive; a success
// or the file's removal deletes the archived tasks it makes moot. A task is
// only deleted while it is archived: one an operator sent back to the queue
// with `syncctl retry` is left to run.
type Failures struct {
	rdb  redis.UniversalClient
	insp *asynq.Inspector
}

// NewFailures works on the daemon's Redis.
func NewFailures(rdb redis.UniversalClient, insp *asynq.Inspector) *Failures {
	return &Failures{rdb: rdb, insp: insp}
}

const failuresPrefix = "imagesync:failures:"

// failuresTTL matches how long asynq keeps archived tasks (90 days).
const failuresTTL = 90 * 24 * time.Hour

// recordScript sets one kind's archived task and returns the one it
// replaces, atomically, so two workers failing at once lose neither.
var recordScript = redis.NewScript(`
local old = redis.call("HGET", KEYS[1], ARGV[1])
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
redis.call("PEXPIRE", KEYS[1], ARGV[3])
return old`)

// Record notes that the task (queue, id) of type typ about the image at
// location failed for good (asynq archives it), and deletes the archived
// task of the same kind it supersedes.
func (f *Failures) Record(ctx context.Context, location, typ, queue, id string) error {
	if f == nil {
		return nil
	}
	old, err := recordScript.Run(ctx, f.rdb, []string{failuresPrefix + location}, typ, queue+"\n"+id, failuresTTL.Milliseconds()).Text()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("recording the failure of %s: %w", id, err)
	}
	if oq, oid, ok := strings.Cut(old, "\n"); ok && oid != id {
		return f.deleteArchived(oq, oid)
	}
	return nil
}

// Resolve deletes the archived tasks of the given types (every type when
// none is given) about the image at location: its work succeeded since, or
// its file is gone.
func (f *Failures) Resolve(ctx context.Context, location string, types ...string) error {
	if f == nil {
		return nil
	}
	key := failuresPrefix + location
	all, err := f.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("reading the failures of %s: %w", location, err)
	}
	var errs []error
	for typ, ref := range all {
		if len(types) > 0 && !slices.Contains(types, typ) {
			continue
		}
		if q, id, ok := strings.Cut(ref, "\n"); ok {
			if err := f.deleteArchived(q, id); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := f.rdb.HDel(ctx, key, typ).Err(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (f *Failures) deleteArchived(queue, id string) error {
	ti, err := f.insp.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("looking up %s: %w", id, err)
	case ti.State != asynq.TaskStateArchived:
		return nil
	}
	if err := f.insp.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return fmt.Errorf("deleting the superseded failure %s: %w", id, err)
	}
	return nil
}

// taskLocation is the remote location an image task is about, or "" for
// tasks about no single image (republish).
func taskLocation(payload []byte) string {
	var p struct{ ImageRef }
	if json.Unmarshal(payload, &p) != nil || p.Container == "" {
		return ""
	}
	return p.Location()
}
