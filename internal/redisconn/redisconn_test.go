package redisconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/redistest"
)

func TestNewClientPerMode(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		c, err := NewClient(config.Redis{Addr: "10.0.0.1:6379", Username: "u", Password: "p", DB: 3, TLS: true})
		require.NoError(t, err)
		defer c.Close()
		rc, ok := c.(*redis.Client)
		require.True(t, ok, "want *redis.Client, got %T", c)
		o := rc.Options()
		assert.Equal(t, "10.0.0.1:6379", o.Addr)
		assert.Equal(t, "u", o.Username)
		assert.Equal(t, "p", o.Password)
		assert.Equal(t, 3, o.DB)
		require.NotNil(t, o.TLSConfig)
		assert.Equal(t, dialTimeout, o.DialTimeout)
	})
	t.Run("embedded dials the listen address", func(t *testing.T) {
		c, err := NewClient(config.Redis{Addr: config.EmbeddedRedis, EmbeddedListen: "127.0.0.1:6390"})
		require.NoError(t, err)
		defer c.Close()
		o := c.(*redis.Client).Options()
		assert.Equal(t, "127.0.0.1:6390", o.Addr)
		assert.Nil(t, o.TLSConfig)
	})
	t.Run("sentinel", func(t *testing.T) {
		c, err := NewClient(config.Redis{Addr: config.EmbeddedRedis, Password: "data", DB: 2,
			Sentinel: config.RedisSentinel{Master: "m", Addrs: []string{"s1:26379", "s2:26379"}, Password: "sent"}})
		require.NoError(t, err)
		defer c.Close()
		rc, ok := c.(*redis.Client)
		require.True(t, ok, "a failover client is a *redis.Client, got %T", c)
		o := rc.Options()
		// go-redis names the failover client's address so; its dialer asks
		// the sentinels for the master.
		assert.Equal(t, "FailoverClient", o.Addr)
		assert.Equal(t, "data", o.Password, "the data password goes to the master")
		assert.Equal(t, 2, o.DB)
	})
	t.Run("cluster", func(t *testing.T) {
		c, err := NewClient(config.Redis{Addr: config.EmbeddedRedis, Password: "p", Cluster: config.RedisCluster{Addrs: []string{"c1:7000", "c2:7000"}}})
		require.NoError(t, err)
		defer c.Close()
		cc, ok := c.(*redis.ClusterClient)
		require.True(t, ok, "want *redis.ClusterClient, got %T", c)
		assert.Equal(t, []string{"c1:7000", "c2:7000"}, cc.Options().Addrs)
		assert.Equal(t, "p", cc.Options().Password)
		assert.Equal(t, clusterReload, cc.Options().ClusterStateReloadInterval)
	})
}

func TestTLSConfig(t *testing.T) {
	tc, err := TLSConfig(config.Redis{})
	require.NoError(t, err)
	assert.Nil(t, tc, "no TLS unless asked")

	tc, err = TLSConfig(config.Redis{TLS: true})
	require.NoError(t, err)
	require.NotNil(t, tc)
	assert.Nil(t, tc.RootCAs, "the system roots")

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, selfSignedPEM(t), 0o600))
	tc, err = TLSConfig(config.Redis{TLSCAFile: ca})
	require.NoError(t, err)
	require.NotNil(t, tc, "tls_ca_file implies TLS")
	assert.NotNil(t, tc.RootCAs)

	junk := filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(junk, []byte("not a certificate"), 0o600))
	_, err = TLSConfig(config.Redis{TLSCAFile: junk})
	require.ErrorContains(t, err, "no PEM certificate")
	_, err = NewClient(config.Redis{Addr: "r:6379", TLSCAFile: filepath.Join(dir, "missing.pem")})
	require.ErrorContains(t, err, "redis.tls_ca_file")
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestParseSwitchMaster(t *testing.T) {
	f, ok := parseSwitchMaster("mymaster 127.0.0.1 6379 127.0.0.1 6380")
	require.True(t, ok)
	assert.Equal(t, Failover{Master: "mymaster", Old: "127.0.0.1:6379", New: "127.0.0.1:6380"}, f)
	f, ok = parseSwitchMaster("m ::1 6379 ::1 6380")
	require.True(t, ok)
	assert.Equal(t, "[::1]:6380", f.New)
	for _, bad := range []string{"", "m 1 2 3", "m 1 2 3 4 5"} {
		_, ok := parseSwitchMaster(bad)
		assert.False(t, ok, bad)
	}
}

func TestDialErrorsNameTheSetup(t *testing.T) {
	ctx := context.Background()
	dead := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	_, err := Dial(ctx, config.Redis{Addr: dead})
	require.ErrorContains(t, err, "cannot reach Redis at "+dead)
	_, err = Dial(ctx, config.Redis{Addr: config.EmbeddedRedis, Sentinel: config.RedisSentinel{Master: "m", Addrs: []string{dead}}})
	require.ErrorContains(t, err, `cannot reach the Redis master "m" through the sentinels`)
	_, err = Dial(ctx, config.Redis{Addr: config.EmbeddedRedis, Cluster: config.RedisCluster{Addrs: []string{dead}}})
	require.ErrorContains(t, err, "cannot reach the Redis Cluster")
}

// TestSentinelFailoverFollowed runs a master, a replica and three sentinels,
// kills the master, and checks that the client built from the config keeps
// working on the promoted replica and that WatchFailovers reports the change.
func TestSentinelFailoverFollowed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five redis-server processes")
	}
	set := redistest.StartSentinelSet(t, redistest.SentinelOptions{Master: "imagesync"})
	cfg := config.Redis{Addr: config.EmbeddedRedis, Sentinel: config.RedisSentinel{Master: "imagesync", Addrs: set.Addrs()}}
	full := config.Default()
	full.Redis = cfg
	require.NoError(t, full.Validate())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := Dial(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close()
	assert.Equal(t, config.RedisModeSentinel, conn.Mode)
	master, err := conn.MasterAddr(ctx)
	require.NoError(t, err)
	assert.Equal(t, set.Master.Addr, master)
	require.NoError(t, conn.Client.Set(ctx, "k", "before", 0).Err())

	seen := watchFailovers(t, ctx, conn)
	time.Sleep(500 * time.Millisecond) // let it learn the current master

	// Wait until the replica has the key, so the test does not depend on
	// replication lag.
	replica := set.Replica.Client(t)
	require.Eventually(t, func() bool { return replica.Get(ctx, "k").Val() == "before" }, 10*time.Second, 20*time.Millisecond)
	set.Master.Kill()

	require.Eventually(t, func() bool { return len(seen()) > 0 }, 60*time.Second, 50*time.Millisecond, "no failover reported")
	assert.Equal(t, Failover{Master: "imagesync", Old: set.Master.Addr, New: set.Replica.Addr}, seen()[0])

	// The same client now writes to the promoted replica.
	require.Eventually(t, func() bool { return conn.Client.Set(ctx, "k", "after", 0).Err() == nil }, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, "after", replica.Get(ctx, "k").Val())
	now, err := conn.MasterAddr(ctx)
	require.NoError(t, err)
	assert.Equal(t, set.Replica.Addr, now)
}

func TestIsTransient(t *testing.T) {
	ctx := context.Background()
	// A real refused connection and a real error reply.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)), MaxRetries: -1})
	defer dead.Close()
	refused := dead.Ping(ctx).Err()
	require.Error(t, refused)
	srv := redistest.StartProcess(t)
	live := srv.Client(t)
	wrongType := live.Do(ctx, "INCR", "a", "b").Err()
	require.Error(t, wrongType)
	closed := redis.NewClient(&redis.Options{Addr: srv.Addr})
	require.NoError(t, closed.Close())

	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", refused, true},
		{"wrapped refused", fmt.Errorf("enqueue: %w", refused), true},
		{"EOF", io.EOF, true},
		{"READONLY reply", redisReply("READONLY You can't write against a read only replica."), true},
		{"LOADING reply", redisReply("LOADING Redis is loading the dataset in memory"), true},
		{"wrong arguments", wrongType, false},
		{"client closed", closed.Ping(ctx).Err(), false},
		{"no sentinel", errors.New("redis: all sentinels specified in configuration are unreachable: dial tcp: refused"), true},
		{"flattened by asynq", errors.New("UNKNOWN: redis eval error: dial tcp 127.0.0.1:6379: connect: connection refused"), true},
		{"flattened READONLY", errors.New("INTERNAL_ERROR: redis eval error: READONLY You can't write against a read only replica."), true},
		{"plain", errors.New("no such image"), false},
	} {
		assert.Equal(t, tc.want, IsTransient(tc.err), "%s: %v", tc.name, tc.err)
	}
}

// redisReply is an error reply as go-redis returns it.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}

// go-redis's chatter goes to zap at debug level, not to stderr.
func TestLogTo(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	LogTo(zap.New(core))
	t.Cleanup(func() { LogTo(zap.NewNop()) })
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)), MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	require.Error(t, c.Ping(context.Background()).Err())
	require.Eventually(t, func() bool { return logs.FilterLoggerName("go-redis").Len() > 0 }, 5*time.Second, 10*time.Millisecond)
	e := logs.FilterLoggerName("go-redis").All()[0]
	assert.Equal(t, zapcore.DebugLevel, e.Level)
	assert.Contains(t, e.Message, "connection refused")
}

// ScanKeys finds keys on every master of a cluster, not only on the node a
// plain SCAN happens to reach.
func TestScanKeysCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	ctx := context.Background()
	nodes := redistest.StartCluster(t, 3)
	c, err := NewClient(config.Redis{Addr: config.EmbeddedRedis, Cluster: config.RedisCluster{Addrs: []string{nodes[0].Addr}}})
	require.NoError(t, err)
	defer c.Close()
	var want []string
	for i := range 30 {
		k := fmt.Sprintf("imagesync:test:%d", i)
		require.NoError(t, c.Set(ctx, k, "x", 0).Err())
		want = append(want, k)
	}
	require.NoError(t, c.Set(ctx, "other", "x", 0).Err())
	got, err := ScanKeys(ctx, c, "imagesync:test:*")
	require.NoError(t, err)
	assert.ElementsMatch(t, want, got)

	single := redistest.StartProcess(t).Client(t)
	require.NoError(t, single.Set(ctx, "imagesync:test:a", "x", 0).Err())
	got, err = ScanKeys(ctx, single, "imagesync:test:*")
	require.NoError(t, err)
	assert.Equal(t, []string{"imagesync:test:a"}, got)
}

// A cluster replica taking over a dead master's slots is reported, and the
// cluster client writes to it.
func TestClusterFailoverFollowed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a four-node Redis Cluster and waits out a node timeout")
	}
	nodes := redistest.StartCluster(t, 3)
	replica := redistest.AddClusterReplica(t, nodes, nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := Dial(ctx, config.Redis{Addr: config.EmbeddedRedis, Cluster: config.RedisCluster{Addrs: redistest.Addrs(nodes)}})
	require.NoError(t, err)
	defer conn.Close()

	seen := watchFailovers(t, ctx, conn)
	time.Sleep(500 * time.Millisecond) // let it read the slot map once

	nodes[0].Kill()
	require.Eventually(t, func() bool { return len(seen()) > 0 }, 60*time.Second, 100*time.Millisecond, "no failover reported")
	assert.Equal(t, []Failover{{Master: "slots 0-5460", Old: nodes[0].Addr, New: replica.Addr}}, seen())
	// "{a}" hashes to slot 15495... pick a key in 0-5460: "{b}" is 3300.
	slot, err := conn.Client.ClusterKeySlot(ctx, "{b}").Result()
	require.NoError(t, err)
	require.Less(t, slot, int64(5461))
	deadline := time.Now().Add(30 * time.Second)
	for err := conn.Client.Set(ctx, "{b}", "after", 0).Err(); err != nil; err = conn.Client.Set(ctx, "{b}", "after", 0).Err() {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster client does not write to the new master: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	assert.Equal(t, "after", replica.Client(t).Do(ctx, "GET", "{b}").Val())
}

// watchFailovers runs conn.WatchFailovers until the test ends and returns
// what it has reported so far.
func watchFailovers(t *testing.T, ctx context.Context, conn *Conn) (seen func() []Failover) {
	t.Helper()
	var mu sync.Mutex
	var got []Failover
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn.WatchFailovers(wctx, 200*time.Millisecond, func(f Failover) {
			mu.Lock()
			got = append(got, f)
			mu.Unlock()
		})
	}()
	t.Cleanup(func() { stop(); <-done })
	return func() []Failover {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}
