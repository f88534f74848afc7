package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions tune how fast the sentinels of a SentinelSet fail over.
type SentinelOptions struct {
	// Master is the monitored name ("mymaster" if empty).
	Master string
	// DownAfter is down-after-milliseconds: how long the master must be
	// silent before a sentinel calls it down (1s if zero).
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout (3s if zero).
	FailoverTimeout time.Duration
}

// SentinelSet is a master, one replica and three sentinels monitoring them
// (quorum 2), all redis-server children of the test.
type SentinelSet struct {
	Name      string
	Master    *Server
	Replica   *Server
	Sentinels []*Server
}

// StartSentinelSet starts the set and waits until a failover could happen:
// the replica is in sync and every sentinel knows the replica and the two
// other sentinels.
func StartSentinelSet(t testing.TB, o SentinelOptions) *SentinelSet {
	t.Helper()
	if o.Master == "" {
		o.Master = "mymaster"
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 3 * time.Second
	}
	set := &SentinelSet{Name: o.Master}
	// No delay before the full sync of the replica.
	set.Master = StartProcess(t, "--repl-diskless-sync-delay", "0")
	set.Replica = StartProcess(t, "--replicaof", "127.0.0.1", fmt.Sprint(set.Master.Port()))
	for range 3 {
		set.Sentinels = append(set.Sentinels, StartSentinel(t, o.Master, set.Master.Addr, 2, o.DownAfter, o.FailoverTimeout))
	}
	set.WaitReady(t, 60*time.Second)
	return set
}

// StartSentinel starts `redis-server sentinel.conf --sentinel` on a free
// port, monitoring masterAddr as name. Its sentinel.conf lives in the
// server's own t.TempDir() (a sentinel rewrites it as it learns).
func StartSentinel(t testing.TB, name, masterAddr string, quorum int, downAfter, failoverTimeout time.Duration) *Server {
	t.Helper()
	host, port, err := net.SplitHostPort(masterAddr)
	if err != nil {
		t.Fatalf("redistest: master address %q: %v", masterAddr, err)
	}
	s := &Server{t: t, dir: t.TempDir(), args: []string{"--sentinel"}}
	s.conf = filepath.Join(s.dir, "sentinel.conf")
	conf := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s %[4]d\n"+
		"sentinel down-after-milliseconds %[1]s %[5]d\n"+
		"sentinel failover-timeout %[1]s %[6]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		name, host, port, quorum, downAfter.Milliseconds(), failoverTimeout.Milliseconds())
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return startProcess(t, s)
}

// Addrs are the sentinels' host:port.
func (set *SentinelSet) Addrs() []string {
	var out []string
	for _, s := range set.Sentinels {
		out = append(out, s.Addr)
	}
	return out
}

// MasterAddr asks the live sentinels where the master is ("" when none
// answers).
func (set *SentinelSet) MasterAddr(t testing.TB) string {
	t.Helper()
	for _, s := range set.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		addr, err := sc.GetMasterAddrByName(ctx, set.Name).Result()
		cancel()
		_ = sc.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1])
		}
	}
	return ""
}

// WaitReady waits until the replica is in sync with the master and every
// sentinel knows the replica and the other sentinels, so that killing the
// master leads to a failover.
func (set *SentinelSet) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		why = set.notReady(ctx)
		if why == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("redistest: sentinel set not ready after %s: %s", timeout, why)
}

func (set *SentinelSet) notReady(ctx context.Context) string {
	rc := redis.NewClient(&redis.Options{Addr: set.Replica.Addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	info, err := rc.Info(ctx, "replication").Result()
	_ = rc.Close()
	if err != nil {
		return "replica: " + err.Error()
	}
	if !strings.Contains(info, "master_link_status:up") {
		return "replica not in sync yet"
	}
	for _, s := range set.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
		replicas, rerr := sc.Replicas(ctx, set.Name).Result()
		others, serr := sc.Sentinels(ctx, set.Name).Result()
		_ = sc.Close()
		if rerr != nil || serr != nil {
			return fmt.Sprintf("sentinel %s: %v %v", s.Addr, rerr, serr)
		}
		if len(replicas) != 1 || strings.Contains(replicas[0]["flags"], "down") || strings.Contains(replicas[0]["flags"], "disconnected") {
			return fmt.Sprintf("sentinel %s does not see the replica up yet: %v", s.Addr, replicas)
		}
		if len(others) != len(set.Sentinels)-1 {
			return fmt.Sprintf("sentinel %s knows %d other sentinels, want %d", s.Addr, len(others), len(set.Sentinels)-1)
		}
	}
	return ""
}

// HoldReplication makes the replica stop applying what the master sends
// (CLIENT PAUSE WRITE on the replica holds its master link) until
// ReleaseReplication: the master goes on acknowledging writes the replica
// does not have. If the master dies meanwhile, the replica drops what it had
// received but not applied, so a failover loses those writes, as one does
// when replication lags.
func (set *SentinelSet) HoldReplication(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := set.Replica.Client(t).Do(ctx, "CLIENT", "PAUSE", "600000", "WRITE").Err(); err != nil {
		t.Fatalf("redistest: hold replication: %v", err)
	}
}

// ReleaseReplication ends HoldReplication.
func (set *SentinelSet) ReleaseReplication(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := set.Replica.Client(t).Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatalf("redistest: release replication: %v", err)
	}
}

// ReplOffset is a server's master_repl_offset (INFO replication): how much
// replication stream it has produced or applied.
func ReplOffset(t testing.TB, s *Server) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.Client(t).Info(ctx, "replication").Result()
	if err != nil {
		t.Fatalf("redistest: INFO replication of %s: %v", s.Addr, err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "master_repl_offset:"); ok {
			var n int64
			if _, err := fmt.Sscan(v, &n); err == nil {
				return n
			}
		}
	}
	t.Fatalf("redistest: no master_repl_offset in INFO of %s", s.Addr)
	return 0
}
