package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/imagesync/imagesync/internal/jobs"
)

// Two daemons on one Redis, each with the republish schedule: every tick is
// enqueued once, because the task id is derived from the scheduled instant.
func TestScheduleEnqueuesEachTickOnceAcrossDaemons(t *testing.T) {
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true)
	require.NoError(t, mr.Start())
	t.Cleanup(mr.Close)
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var scheds []*schedule
	for _, node := range []string{"a", "b"} {
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		s, err := startSchedule(ctx, "@every 1s", jobs.NewEnqueuer(rdb, node), log.With(zap.String("node", node)))
		require.NoError(t, err)
		scheds = append(scheds, s)
	}
	require.Eventually(t, func() bool { return logs.FilterMessage("republish sweep scheduled").Len() >= 6 }, 10*time.Second, 50*time.Millisecond)
	for _, s := range scheds {
		s.Stop()
	}

	ticks := map[string][]string{}
	for _, e := range logs.FilterMessage("republish sweep scheduled").All() {
		tick := e.ContextMap()["tick"].(time.Time).String()
		ticks[tick] = append(ticks[tick], e.ContextMap()["outcome"].(string))
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	pending, err := jobs.NewEnqueuer(rdb, "x").Inspector().ListPendingTasks(jobs.QueueDefault)
	require.NoError(t, err)
	enqueued, shared := 0, 0
	for tick, outcomes := range ticks {
		if len(outcomes) == 2 {
			shared++
		}
		n := 0
		for _, o := range outcomes {
			if o == string(jobs.Enqueued) {
				n++
			}
		}
		assert.LessOrEqual(t, n, 1, "tick %s enqueued %d times (%v)", tick, n, outcomes)
		enqueued += n
	}
	assert.Len(t, pending, enqueued, "one task per enqueued tick")
	assert.GreaterOrEqual(t, shared, 2, "both daemons fired on the same ticks: %v", ticks)
	for _, ti := range pending {
		assert.Equal(t, jobs.TypeRepublish, ti.Type)
	}
}

func TestScheduleRejectsABadSpec(t *testing.T) {
	_, err := startSchedule(context.Background(), "every night", nil, zap.NewNop())
	require.ErrorContains(t, err, `schedule.republish "every night"`)
}
