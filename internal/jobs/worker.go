package jobs

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

type ctxKey int

const (
	loggerKey ctxKey = iota
	// jobTypeKey holds the type of the running job, which Enqueue records
	// on the tasks it queues (hop latency).
	jobTypeKey
)

// Logger returns the job's logger (with job id, type and queue fields).
func Logger(ctx context.Context, fallback *zap.Logger) *zap.Logger {
	if l, ok := ctx.Value(loggerKey).(*zap.Logger); ok {
		return l
	}
	return fallback
}

// RetryDelay is the backoff between attempts: exponential from 10s to 10
// minutes with jitter; a task whose worker died (lease expired) is retried
// at once, and one that failed only because Redis was away (a restart, a
// Sentinel failover) within seconds, since it was not the task's fault.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, asynq.ErrLeaseExpired) {
		return time.Second
	}
	if errors.Is(err, ErrRedisUnavailable) {
		return time.Second + rand.N(2*time.Second)
	}
	var ue *UnauthorizedError
	if errors.As(err, &ue) {
		return 5 * time.Minute
	}
	d := 10 * time.Second << min(n, 6)
	d = min(d, 10*time.Minute)
	return d/2 + rand.N(d/2+1)
}

// IsFailure keeps shutdown cancellations out of the failure statistics.
func IsFailure(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled)
}

// AuthPausedKey holds the reason the queues were paused after a 401.
const AuthPausedKey = "imagesync:auth-paused"

// AuthGate stops the workers when the cloud rejects the token: retrying with
// the same token only burns attempts and floods the server. It pauses the
// queues (so `syncctl status` shows why) until Clear is called after a
// successful authentication.
type AuthGate struct {
	rdb    redis.UniversalClient
	insp   *asynq.Inspector
	queues []string
	log    *zap.Logger
	onTrip func()
}

// NewAuthGate guards queues.
func NewAuthGate(rdb redis.UniversalClient, insp *asynq.Inspector, queues []string, log *zap.Logger, onTrip func()) *AuthGate {
	return &AuthGate{rdb: rdb, insp: insp, queues: queues, log: log, onTrip: onTrip}
}

// Trip pauses the queues and records why.
func (g *AuthGate) Trip(ctx context.Context, err error) {
	set, rerr := g.rdb.SetNX(ctx, AuthPausedKey, err.Error(), 0).Result()
	if rerr != nil {
		g.log.Error("cannot record the auth pause", zap.Error(rerr))
	}
	if !set {
		return // already tripped
	}
	g.log.Error("THE CLOUD REJECTED THE TOKEN: pausing all imagesync queues until a valid token is written to cloud.token_file, or configured and syncd restarted",
		zap.Strings("queues", g.queues), zap.Error(err))
	for _, q := range g.queues {
		if perr := g.insp.PauseQueue(q); perr != nil && !errors.Is(perr, asynq.ErrQueueNotFound) {
			g.log.Warn("pause queue", zap.String("queue", q), zap.Error(perr))
		}
	}
	if g.onTrip != nil {
		g.onTrip()
	}
}

// Reason returns the recorded 401 message, or "".
func (g *AuthGate) Reason(ctx context.Context) string {
	v, _ := g.rdb.Get(ctx, AuthPausedKey).Result()
	return v
}

// Clear unpauses the queues after a successful authentication.
func (g *AuthGate) Clear(ctx context.Context) error {
	n, err := g.rdb.Del(ctx, AuthPausedKey).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	g.log.Info("token accepted again: resuming queues", zap.Strings("queues", g.queues))
	for _, q := range g.queues {
		if err := g.insp.UnpauseQueue(q); err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			g.log.Warn("unpause queue", zap.String("queue", q), zap.Error(err))
		}
	}
	g.runUnauthorized()
	return nil
}

// unauthorizedPrefix starts every UnauthorizedError message; a task's last
// error is only text, so that is how a 401 failure is recognised.
const unauthorizedPrefix = "the cloud rejected the token (401)"

// runUnauthorized runs now the tasks waiting to retry after a 401: their
// backoff (RetryDelay) only kept them from hammering the cloud with a bad
// token, and with a good one they should not sit idle for minutes.
func (g *AuthGate) runUnauthorized() {
	type ref struct{ queue, id string }
	var due []ref
	for _, q := range g.queues {
		for page := 1; ; page++ {
			tasks, err := g.insp.ListRetryTasks(q, asynq.PageSize(500), asynq.Page(page))
			if err != nil {
				if !errors.Is(err, asynq.ErrQueueNotFound) {
					g.log.Warn("list tasks to resume after the 401", zap.String("queue", q), zap.Error(err))
				}
				break
			}
			for _, ti := range tasks {
				if strings.HasPrefix(ti.LastErr, unauthorizedPrefix) {
					due = append(due, ref{q, ti.ID})
				}
			}
			if len(tasks) < 500 {
				break
			}
		}
	}
	for _, r := range due {
		if err := g.insp.RunTask(r.queue, r.id); err != nil {
			g.log.Warn("resume task after the 401", zap.String("task", r.id), zap.Error(err))
		}
	}
	if len(due) > 0 {
		g.log.Info("resumed the tasks stopped by the 401", zap.Int("tasks", len(due)))
	}
}
