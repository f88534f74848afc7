package daemon

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// Several daemons enqueueing each tick once: TestScheduleOneSweepPerTick.

func TestScheduleRejectsABadSpec(t *testing.T) {
	_, err := startSchedule(context.Background(), "every night", nil, zap.NewNop())
	require.ErrorContains(t, err, `schedule.republish "every night"`)
	require.ErrorContains(t, err, "0 3 * * *", "the message shows a spec that works")
}
