package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/jobs"
)

// schedule enqueues the republish sweep on a cron spec. The task id is
// derived from the scheduled instant (not the moment a daemon woke up), so
// several daemons sharing one Redis enqueue each tick once.
type schedule struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *schedule) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
}

func startSchedule(ctx context.Context, spec string, enq *jobs.Enqueuer, log *zap.Logger) (*schedule, error) {
	if spec == "" {
		return &schedule{}, nil
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule.republish %q: %w (use 5-field cron such as \"0 3 * * *\" or @every 1h)", spec, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &schedule{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		next := sched.Next(time.Now())
		for {
			t := time.NewTimer(time.Until(next))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			tick := next.UTC()
			p := jobs.RepublishPayload{V: jobs.PayloadVersion, Tick: tick.Format(time.RFC3339Nano)}
			out, err := enq.Enqueue(ctx, jobs.Request{Type: jobs.TypeRepublish, ID: jobs.RepublishTaskID(p), Queue: jobs.QueueDefault, Payload: p})
			if err != nil {
				log.Error("cannot enqueue the scheduled republish sweep", zap.Time("tick", tick), zap.Error(err))
			} else {
				log.Info("republish sweep scheduled", zap.Time("tick", tick), zap.String("outcome", string(out)))
			}
			next = sched.Next(tick)
		}
	}()
	return s, nil
}
