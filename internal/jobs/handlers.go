package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/inspect"
	"github.com/imagesync/imagesync/internal/metrics"
	"github.com/imagesync/imagesync/internal/pithos"
)

// Deps are what the handlers need; the daemon builds them once.
type Deps struct {
	Session  *cloud.Session
	Catalog  *Catalog
	Enqueuer *Enqueuer
	Cache    *pithos.HashmapCache
	Metrics  *metrics.Metrics
	Log      *zap.Logger
	Gate     *AuthGate
	// Redis, if set, serialises the register and publish jobs of each
	// image (see imageLock).
	Redis       redis.UniversalClient
	Blocks      int
	HashWorkers int
	// Nodes lists the nodes known to this Redis (see internal/nodes); the
	// tasks of an older syncd that did not say which node has their files
	// are forwarded to all of them. nil: only this node.
	Nodes func(context.Context) ([]string, error)
	// Now is the clock for metadata placeholders ({{.Date}} falls back to it).
	Now func() time.Time
	// Detector inspects image files (once per content, with its cache);
	// nil inspects without a cache.
	Detector *inspect.Detector
}

// Worker holds the task handlers.
type Worker struct {
	d     Deps
	lock  *imageLock
	quota *quotaAdvice
}

// NewWorker returns the handlers for deps.
func NewWorker(d Deps) *Worker {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Detector == nil {
		d.Detector = noCacheDetector()
	}
	w := &Worker{d: d, quota: &quotaAdvice{rdb: d.Redis, metrics: d.Metrics, log: d.Log}}
	if d.Enqueuer != nil {
		w.quota.node = d.Enqueuer.Node
	}
	if d.Redis != nil {
		w.lock = &imageLock{rdb: d.Redis, ttl: 15 * time.Second, poll: 50 * time.Millisecond}
	}
	return w
}

// Handler routes every imagesync task type, wrapped in the logging,
// metrics and error-classification middleware.
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	mux.Use(w.middleware)
	mux.HandleFunc(TypeUpload, w.handleUpload)
	mux.HandleFunc(TypeRegister, w.handleRegister)
	mux.HandleFunc(TypePublish, w.handlePublish)
	mux.HandleFunc(TypeRepublish, w.handleRepublish)
	mux.HandleFunc(TypeUnregister, w.handleUnregister)
	return mux
}

func (w *Worker) middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		queue, _ := asynq.GetQueueName(ctx)
		retry, _ := asynq.GetRetryCount(ctx)
		log := w.d.Log.With(zap.String("job", id), zap.String("type", t.Type()), zap.String("queue", queue), zap.Int("attempt", retry+1))
		ctx = context.WithValue(ctx, loggerKey, log)
		ctx = context.WithValue(ctx, jobTypeKey, t.Type())
		start := time.Now()
		var hopFields []zap.Field
		if by, hop, ok := hopLatency(t.Headers(), retry, start); ok {
			hopFields = []zap.Field{zap.String("after", by), zap.Duration("hop", hop)}
			if w.d.Metrics != nil {
				w.d.Metrics.HopLatency.WithLabelValues(by, t.Type()).Observe(hop.Seconds())
			}
		}
		err := next.ProcessTask(ctx, t)
		elapsed := time.Since(start)
		outcome := "ok"
		switch {
		case err == nil:
			log.Info("job done", append([]zap.Field{zap.Duration("took", elapsed)}, hopFields...)...)
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			outcome = "cancelled"
			log.Info("job interrupted; it will resume", zap.Duration("took", elapsed))
		default:
			switch Classify(err) {
			case Unauthorized:
				outcome = "unauthorized"
				if w.d.Gate != nil {
					w.d.Gate.Trip(context.WithoutCancel(ctx), err)
				}
			case Permanent:
				outcome = "archived"
				log.Error("job failed permanently", zap.Error(err))
			default:
				outcome = "retry"
				if maxRetry, _ := asynq.GetMaxRetry(ctx); retry >= maxRetry {
					outcome = "archived"
				}
				log.Warn("job failed; will retry", zap.Error(err))
			}
			if outcome == "archived" {
				w.recordFailure(ctx, t, queue, id, log)
			}
		}
		if w.d.Metrics != nil {
			w.d.Metrics.JobsTotal.WithLabelValues(t.Type(), outcome).Inc()
			w.d.Metrics.JobDuration.WithLabelValues(t.Type()).Observe(elapsed.Seconds())
		}
		return err
	})
}

// recordFailure notes an archived task in the failure index, which drops
// the older failure of the same kind for the same image.
func (w *Worker) recordFailure(ctx context.Context, t *asynq.Task, queue, id string, log *zap.Logger) {
	loc := taskLocation(t.Payload())
	if loc == "" {
		return
	}
	if err := w.d.Enqueuer.Failures().Record(context.WithoutCancel(ctx), loc, t.Type(), queue, id); err != nil {
		log.Warn("cannot index the failure", zap.Error(err))
	}
}

// resolved deletes the archived tasks of the given types about ref: the
// work they failed at has been done since, or the file is gone.
func (w *Worker) resolved(ctx context.Context, ref ImageRef, log *zap.Logger, types ...string) {
	if err := w.d.Enqueuer.Failures().Resolve(context.WithoutCancel(ctx), ref.Location(), types...); err != nil {
		log.Warn("cannot clear the image's earlier failures", zap.Error(err))
	}
}
