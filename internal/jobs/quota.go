package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/astakos"
	"github.com/imagesync/imagesync/internal/metrics"
)

// The storage-quota pre-check is advice, not a gate. Before sending blocks
// an upload asks Astakos how much pithos.diskspace is free, to refuse at
// once an image that cannot fit. When the quotas cannot be read (an account
// service that does not serve /quotas, answers 400 or 404, or in a shape we
// do not know), that is no reason to hold every upload back: the upload
// goes ahead and the server's own 413, if the quota is really full, is the
// verdict. syncd warns once (log, the imagesync_quota_unreadable gauge and
// `syncctl status`) and says so again when the quotas can be read.

// QuotaUnreadableKey is a Redis hash: node -> QuotaNote (JSON), for the
// nodes whose syncd cannot read the storage quota right now.
const QuotaUnreadableKey = "imagesync:quota-unreadable"

// QuotaNote says why a node cannot read the storage quota.
type QuotaNote struct {
	Node   string    `json:"node"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

type quotaState int

const (
	quotaUnknown quotaState = iota
	quotaReadable
	quotaUnreadable
)

// quotaAdvice wraps the quota reading of uploads.
type quotaAdvice struct {
	node    string
	rdb     redis.UniversalClient // nil: not recorded (tests)
	metrics *metrics.Metrics      // nil: no gauge
	log     *zap.Logger

	mu    sync.Mutex
	state quotaState
}

// free is pithos.UploadOptions.QuotaFree: the free space astakos reports,
// or, when it cannot be read, astakos.Unlimited (no objection).
func (q *quotaAdvice) free(read func(context.Context) (int64, error)) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		n, err := read(ctx)
		switch {
		case err == nil:
			q.set(ctx, quotaReadable, nil)
			return n, nil
		case ctx.Err() != nil, Classify(err) == Unauthorized:
			// Not the quota's fault: the upload would fail the same way.
			return 0, err
		}
		q.set(ctx, quotaUnreadable, err)
		return astakos.Unlimited, nil
	}
}

// set records a change of state; repeats change nothing.
func (q *quotaAdvice) set(ctx context.Context, s quotaState, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.state == s {
		return
	}
	was := q.state
	q.state = s
	ctx = context.WithoutCancel(ctx)
	if s == quotaUnreadable {
		q.log.Warn("cannot read the storage quota; uploading without the pre-check (a full quota is reported by the server's 413)", zap.Error(err))
		if q.metrics != nil {
			q.metrics.QuotaUnreadable.Set(1)
		}
		if q.rdb != nil {
			b, _ := json.Marshal(QuotaNote{Node: q.node, Reason: err.Error(), Since: time.Now().UTC()})
			if rerr := q.rdb.HSet(ctx, QuotaUnreadableKey, q.node, b).Err(); rerr != nil {
				q.log.Warn("cannot record that the quota is unreadable", zap.Error(rerr))
			}
		}
		return
	}
	if was == quotaUnreadable {
		q.log.Info("the storage quota can be read again; uploads are pre-checked against it")
	}
	if q.metrics != nil {
		q.metrics.QuotaUnreadable.Set(0)
	}
	if q.rdb != nil {
		// Also after a restart (state unknown): an earlier run's note is stale.
		_ = q.rdb.HDel(ctx, QuotaUnreadableKey, q.node).Err()
	}
}

// ListQuotaUnreadable returns the nodes that cannot read the storage quota,
// by node.
func ListQuotaUnreadable(ctx context.Context, rdb redis.UniversalClient) ([]QuotaNote, error) {
	m, err := rdb.HGetAll(ctx, QuotaUnreadableKey).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the quota notes: %w", err)
	}
	out := []QuotaNote{}
	for _, v := range m {
		var n QuotaNote
		if json.Unmarshal([]byte(v), &n) == nil {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b QuotaNote) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}
