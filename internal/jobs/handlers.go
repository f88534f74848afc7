package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/cloud"
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
	// Now is the clock for metadata placeholders ({{.Date}} falls back to it).
	Now func() time.Time
}

// Worker holds the task handlers.
type Worker struct {
	d    Deps
	lock *imageLock
}

// NewWorker returns the handlers for deps.
func NewWorker(d Deps) *Worker {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	w := &Worker{d: d}
	if d.Redis != nil {
		w.lock = &imageLock{rdb: d.Redis, ttl: 2 * time.Minute, poll: 50 * time.Millisecond}
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
				log.Warn("job failed; will retry", zap.Error(err))
			}
		}
		if w.d.Metrics != nil {
			w.d.Metrics.JobsTotal.WithLabelValues(t.Type(), outcome).Inc()
			w.d.Metrics.JobDuration.WithLabelValues(t.Type()).Observe(elapsed.Seconds())
		}
		return err
	})
}

// openImage opens the image file and checks it is still the content the
// task was made for. A changed file returns (nil, nil): the watcher reports
// it again when it settles, under a new task id.
func openImage(p UploadPayload) (*os.File, error) {
	abs := filepath.Join(p.Root, filepath.FromSlash(p.RelPath))
	f, err := os.Open(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, permanent(fmt.Errorf("image file %s was removed before it could be uploaded", abs))
		}
		return nil, permanent(fmt.Errorf("cannot read image file %s: %w (make it readable by syncd, then run `syncctl retry`)", abs, err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", abs, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, permanent(fmt.Errorf("%s is not a regular file", abs))
	}
	if st.Size() != p.Size || st.ModTime().UnixNano() != p.MtimeNs {
		f.Close()
		return nil, nil
	}
	return f, nil
}
