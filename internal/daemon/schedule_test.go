package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// Several daemons enqueueing each tick once: TestScheduleOneSweepPerTick.

func TestScheduleRejectsABadSpec(t *testing.T) {
	_, err := startSchedule(context.Background(), "every night", time.UTC, nil, nil, zap.NewNop())
	require.ErrorContains(t, err, `schedule.republish "every night"`)
	require.ErrorContains(t, err, "0 3 * * *", "the message shows a spec that works")
}

// Every daemon must compute the same instants whenever it started, and in
// the configured zone, not the host's.
func TestScheduleInstants(t *testing.T) {
	athens, err := time.LoadLocation("Europe/Athens")
	require.NoError(t, err)
	kolkata, err := time.LoadLocation("Asia/Kolkata") // +05:30: hours differ from UTC's
	require.NoError(t, err)
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return tm
	}
	tests := []struct {
		spec string
		loc  *time.Location
		from []string // daemons waking at these instants
		want string   // all compute this next tick (UTC)
	}{
		{"@every 10m", time.UTC, []string{"2026-03-04T10:00:00.001Z", "2026-03-04T10:07:13Z", "2026-03-04T10:09:59.999Z"}, "2026-03-04T10:10:00Z"},
		{"@every 10m", time.UTC, []string{"2026-03-04T10:10:00Z"}, "2026-03-04T10:20:00Z"},
		{"@every 3s", time.UTC, []string{"2026-03-04T10:00:01Z", "2026-03-04T10:00:02.5Z"}, "2026-03-04T10:00:03Z"},
		{"@every 1h", kolkata, []string{"2026-03-04T10:00:00Z", "2026-03-04T10:29:00Z"}, "2026-03-04T10:30:00Z"},
		{"@every 1h", time.UTC, []string{"2026-03-04T10:00:00Z", "2026-03-04T10:29:00Z"}, "2026-03-04T11:00:00Z"},
		{"@hourly", kolkata, []string{"2026-03-04T10:00:00Z"}, "2026-03-04T10:30:00Z"},
		{"0 3 * * *", time.UTC, []string{"2026-03-04T01:00:00Z", "2026-03-04T02:59:59Z"}, "2026-03-04T03:00:00Z"},
		{"0 3 * * *", athens, []string{"2026-03-04T00:00:00Z"}, "2026-03-04T01:00:00Z"},             // EET, +02:00
		{"0 3 * * *", athens, []string{"2026-07-04T00:00:00Z"}, "2026-07-05T00:00:00Z"},             // EEST, +03:00: 03:00 was 00:00Z
		{"CRON_TZ=UTC 0 3 * * *", athens, []string{"2026-07-04T00:00:00Z"}, "2026-07-04T03:00:00Z"}, // the spec's own zone wins
	}
	for _, tt := range tests {
		s, err := parseSchedule(tt.spec, tt.loc)
		require.NoError(t, err, tt.spec)
		for _, from := range tt.from {
			assert.Equal(t, utc(tt.want), s.Next(utc(from)).UTC(), "%s in %s from %s", tt.spec, tt.loc, from)
		}
	}
}
