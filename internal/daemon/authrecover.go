package daemon

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/jobs"
)

// authRecheck is how often, while the queues are paused after a 401, syncd
// looks for a new token in cloud.token_file.
const authRecheck = 10 * time.Second

// authRecovery un-pauses the queues once cloud.token_file holds a token
// the cloud accepts, so rotating a token in place needs no restart. A token
// given inline or in SYNCD_TOKEN cannot change: then a restart it is.
type authRecovery struct {
	session *cloud.Session
	gate    *jobs.AuthGate
	every   time.Duration
	log     *zap.Logger
	cleared func()
	running atomic.Bool
}

// start runs the recovery loop until the token is accepted or ctx ends;
// calls while one runs do nothing.
func (r *authRecovery) start(ctx context.Context) {
	if !r.session.HasTokenFile() || !r.running.CompareAndSwap(false, true) {
		return
	}
	r.log.Info("waiting for a new token in cloud.token_file", zap.Duration("checked_every", r.every))
	go func() {
		defer r.running.Store(false)
		r.run(ctx)
	}()
}

func (r *authRecovery) run(ctx context.Context) {
	// Try once at once: the token file may have changed just before the
	// 401 that paused the queues was seen.
	tried := ^uint64(0)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		if _, err := r.session.ReloadToken(); err != nil {
			r.log.Warn("cannot read cloud.token_file", zap.Error(err))
		}
		if gen := r.session.TokenGeneration(); gen != tried {
			tried = gen
			if _, err := r.session.Get(ctx); err == nil {
				if err := r.gate.Clear(ctx); err != nil {
					r.log.Warn("cannot clear the auth pause", zap.Error(err))
					tried = ^uint64(0)
				} else {
					r.cleared()
					return
				}
			} else if jobs.Classify(err) != jobs.Unauthorized {
				tried = ^uint64(0) // not the token's fault: try again next time
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
