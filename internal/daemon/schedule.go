package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/jobs"
)

// schedule enqueues the republish sweeps on a cron spec. Every daemon on one
// Redis computes the same instants (see parseSchedule) and names each
// tick's sweeps after the instant, not after the moment it woke up: this
// node's sweep of its own roots and the one sweep of the shared roots that
// all nodes enqueue under one id. So each node sweeps its roots once per
// tick, and the shared roots are swept once, however many daemons run.
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

// parseSchedule reads spec in the time zone loc. 5-field cron specs and
// descriptors (@hourly, @daily, …) fire at wall-clock times in loc. "@every
// D" fires at the multiples of D counted from midnight, 1 January 1970, in
// loc (for D that divides a day: on the same clock times every day), rather
// than every D from whenever the daemon started, which would give each
// daemon its own instants.
func parseSchedule(spec string, loc *time.Location) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule.republish %q: %w (use 5-field cron such as \"0 3 * * *\", @hourly, or @every 1h)", spec, err)
	}
	switch s := s.(type) {
	case *cron.SpecSchedule:
		// An explicit CRON_TZ=/TZ= prefix in the spec wins.
		if !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") {
			s.Location = loc
		}
		return s, nil
	case cron.ConstantDelaySchedule:
		return everySchedule{every: s.Delay, anchor: time.Date(1970, 1, 1, 0, 0, 0, 0, loc)}, nil
	default:
		return s, nil
	}
}

// everySchedule fires at anchor + n·every.
type everySchedule struct {
	every  time.Duration
	anchor time.Time
}

func (e everySchedule) Next(t time.Time) time.Time {
	n := t.Sub(e.anchor) / e.every
	next := e.anchor.Add((n + 1) * e.every)
	for !next.After(t) { // t before the anchor: integer division rounds toward zero
		next = next.Add(e.every)
	}
	return next.In(e.anchor.Location())
}

// sweepSource builds the sweep tasks of one tick (jobs.Catalog.SweepRequests).
type sweepSource interface {
	SweepRequests(tick time.Time) []jobs.Request
}

func startSchedule(ctx context.Context, spec string, loc *time.Location, src sweepSource, enq *jobs.Enqueuer, log *zap.Logger) (*schedule, error) {
	if spec == "" {
		log.Info("no republish schedule (schedule.republish is empty)")
		return &schedule{}, nil
	}
	sched, err := parseSchedule(spec, loc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &schedule{cancel: cancel, done: make(chan struct{})}
	next := sched.Next(time.Now())
	log.Info("republish schedule", zap.String("spec", spec), zap.String("timezone", loc.String()),
		zap.String("next", next.In(loc).Format(time.RFC3339)), zap.Time("next_utc", next.UTC()))
	go func() {
		defer close(s.done)
		for {
			t := time.NewTimer(time.Until(next))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if wait := time.Until(next); wait > 0 {
				continue // the wall clock was set back: not there yet
			}
			tick := next.UTC()
			for _, r := range src.SweepRequests(tick) {
				out, err := enq.Enqueue(ctx, r)
				if err != nil {
					log.Error("cannot enqueue the scheduled republish sweep", zap.Time("tick", tick), zap.String("queue", r.Queue), zap.Error(err))
					continue
				}
				log.Info("republish sweep scheduled", zap.Time("tick", tick), zap.String("queue", r.Queue), zap.String("task", r.ID), zap.String("outcome", string(out)))
			}
			// From now, not from the tick: ticks missed while this daemon
			// could not run (suspended, overloaded) are skipped, not caught
			// up one by one; the sweep is the same whichever tick runs it.
			next = sched.Next(time.Now())
			if !next.After(tick) {
				next = sched.Next(tick)
			}
		}
	}()
	return s, nil
}
