package multinode

import (
	"bufio"
	"bytes"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/daemon/daemontest"
)

// TestScheduleOneSweepPerNodePerTick runs three daemons with
// schedule.republish "@every 3s" for 15 s: every tick, each node sweeps its
// own roots exactly once and the shared root is swept exactly once, by
// whichever node took it (counted from the "republish sweep done" lines of
// the three logs).
func TestScheduleOneSweepPerNodePerTick(t *testing.T) {
	const every = 3 * time.Second
	cloud := newCloud(t)
	c := newCluster(t, cloud, "a", "b", "c")
	for _, name := range c.order {
		c.fillNode(name, 2, blockSize)
		n := c.nodes[name]
		n.cfg.Schedule.Republish = "@every 3s"
		daemontest.WriteConfig(t, n.cfg, n.cfgPath)
	}
	c.fillShared(2, blockSize)
	c.startAll()
	from := time.Now()
	time.Sleep(15 * time.Second)
	to := time.Now()
	// Let the sweeps of the last ticks finish before counting.
	daemontest.Eventually(t, 30*time.Second, "the queues to be idle", func() bool { return idle(t, c) })
	for _, name := range c.order {
		require.NoError(t, c.nodes[name].proc.Terminate(t, 30*time.Second))
	}

	type sweep struct{ node, scope string }
	perTick := map[time.Time]map[sweep]int{}
	for _, name := range c.order {
		sc := bufio.NewScanner(bytes.NewReader(c.nodes[name].proc.Log(t)))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e struct {
				Msg   string    `json:"msg"`
				Tick  time.Time `json:"tick"`
				Scope string    `json:"scope"`
				Queue string    `json:"queue"`
			}
			if json.Unmarshal(sc.Bytes(), &e) != nil || e.Msg != "republish sweep done" {
				continue
			}
			if perTick[e.Tick] == nil {
				perTick[e.Tick] = map[sweep]int{}
			}
			who := name
			if e.Scope == "shared" {
				who = "any"
			}
			perTick[e.Tick][sweep{who, e.Scope}]++
		}
	}
	var ticks []time.Time
	for tick := range perTick {
		ticks = append(ticks, tick)
	}
	sort.Slice(ticks, func(i, j int) bool { return ticks[i].Before(ticks[j]) })
	full := 0
	for _, tick := range ticks {
		require.Zero(t, tick.UnixNano()%int64(every), "tick %s is on the 3 s grid", tick)
		got := perTick[tick]
		for s, n := range got {
			assert.Equal(t, 1, n, "tick %s: %s swept %d times (%s)", tick.Format(time.RFC3339), s.node, n, s.scope)
		}
		if tick.After(from) && !tick.After(to) {
			full++
			assert.Equal(t, map[sweep]int{{"a", "node"}: 1, {"b", "node"}: 1, {"c", "node"}: 1, {"any", "shared"}: 1}, got, "tick %s", tick.Format(time.RFC3339))
		}
	}
	t.Logf("%d ticks in the 15 s with all three daemons up, %d in all: %v", full, len(ticks), perTick)
	require.GreaterOrEqual(t, full, 4, "ticks while all three ran")
}
