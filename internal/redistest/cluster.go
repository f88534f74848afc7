package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// StartCluster starts a Redis Cluster of n masters (no replicas), each a
// redis-server child of the test with its slots assigned by the test, and
// waits until every node reports the cluster ok.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	if n < 1 {
		t.Fatal("redistest: a cluster needs at least one node")
	}
	nodes := make([]*Server, n)
	bus := make([]int, n)
	for i := range nodes {
		// The bus port is chosen too: port+10000 may be taken or too high.
		bus[i] = FreePort(t)
		nodes[i] = StartProcess(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus[i]), "--cluster-node-timeout", "5000")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	per := clusterSlots / n
	for i, s := range nodes {
		c := s.Client(t)
		lo, hi := i*per, (i+1)*per-1
		if i == n-1 {
			hi = clusterSlots - 1
		}
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("redistest: cluster addslots on %s: %v", s.Addr, err)
		}
		if i > 0 {
			if err := c.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", nodes[0].Port(), bus[0]).Err(); err != nil {
				t.Fatalf("redistest: cluster meet from %s: %v", s.Addr, err)
			}
		}
	}
	var why string
	for ctx.Err() == nil {
		if why = clusterNotReady(ctx, t, nodes); why == "" {
			return nodes
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("redistest: cluster not ready after 60s: %s", why)
	return nil
}

func clusterNotReady(ctx context.Context, t testing.TB, nodes []*Server) string {
	for _, s := range nodes {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
		info, err := c.ClusterInfo(ctx).Result()
		_ = c.Close()
		if err != nil {
			return fmt.Sprintf("%s: %v", s.Addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(nodes))) {
			return fmt.Sprintf("%s: %s", s.Addr, strings.Join(strings.Fields(info)[:3], " "))
		}
	}
	return ""
}

// Addrs lists servers' host:port.
func Addrs(servers []*Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Addr
	}
	return out
}

// AddClusterReplica starts a node, joins it to the cluster of nodes as a
// replica of master, and waits until it is in sync, so that a failover
// (CLUSTER FAILOVER on it, or master dying) can promote it.
func AddClusterReplica(t testing.TB, nodes []*Server, master *Server) *Server {
	t.Helper()
	bus := FreePort(t)
	r := StartProcess(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "5000")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mc := master.Client(t)
	masterID, err := mc.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatalf("redistest: cluster myid of %s: %v", master.Addr, err)
	}
	rc := r.Client(t)
	// The master's bus port: its CLUSTER MYSHARDID is 7.2+, so read it from
	// CLUSTER NODES ("ip:port@bus").
	lines, err := mc.ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatalf("redistest: cluster nodes of %s: %v", master.Addr, err)
	}
	var masterBus string
	for _, l := range strings.Split(lines, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[0] == masterID {
			if _, b, ok := strings.Cut(strings.Split(f[1], ",")[0], "@"); ok {
				masterBus = b
			}
		}
	}
	if masterBus == "" {
		t.Fatalf("redistest: no bus port for %s in CLUSTER NODES", master.Addr)
	}
	if err := rc.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", master.Port(), masterBus).Err(); err != nil {
		t.Fatalf("redistest: cluster meet from %s: %v", r.Addr, err)
	}
	for {
		// The replica must know the master before it can replicate it.
		err := rc.ClusterReplicate(ctx, masterID).Err()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: cluster replicate on %s: %v", r.Addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	all := append(append([]*Server(nil), nodes...), r)
	for {
		info, err := rc.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") && clusterNotReady(ctx, t, all) == "" {
			return r
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: cluster replica %s not in sync after 60s: %v %s", r.Addr, err, clusterNotReady(ctx, t, all))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
