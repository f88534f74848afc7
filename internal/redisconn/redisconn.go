// Package redisconn opens the Redis that carries imagesync's queue: the
// in-process miniredis ("embedded", listening on loopback so syncctl can
// reach it), one server at host:port, a master found through Redis Sentinel
// (following its failovers), or a Redis Cluster. Everything above it talks
// to a redis.UniversalClient and does not care which.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/imagesync/imagesync/internal/config"
)

// Conn is an open connection, and the embedded server when there is one.
type Conn struct {
	Client   redis.UniversalClient
	Embedded *miniredis.Miniredis
	// Addr names the server for messages: host:port, or the sentinel master
	// and sentinels, or the cluster seed nodes.
	Addr string
	// Mode is how Client reaches Redis.
	Mode config.RedisMode

	cfg config.Redis
}

// Close closes the client and stops an embedded server.
func (c *Conn) Close() error {
	err := c.Client.Close()
	if c.Embedded != nil {
		c.Embedded.Close()
	}
	return err
}

// IsEmbedded reports whether this process owns the Redis server.
func (c *Conn) IsEmbedded() bool { return c.Embedded != nil }

// Serve opens the daemon's Redis: it starts the embedded server when the
// config says so. The embedded server keeps nothing across restarts; syncd
// rebuilds the queue from the watched folders when it starts.
func Serve(ctx context.Context, cfg config.Redis) (*Conn, error) {
	if cfg.Mode() != config.RedisModeEmbedded {
		return Dial(ctx, cfg)
	}
	m := miniredis.NewMiniRedis()
	// TTLs follow the wall clock (asynq's unique locks and heartbeats expire).
	m.ClockTTL(true)
	listen := cfg.EmbeddedListen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if err := m.StartAddr(listen); err != nil {
		return nil, fmt.Errorf("embedded redis: cannot listen on %s (redis.embedded_listen): %w; is another syncd running?", listen, err)
	}
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	if err := client.Ping(ctx).Err(); err != nil {
		m.Close()
		return nil, fmt.Errorf("embedded redis at %s: %w", m.Addr(), err)
	}
	return &Conn{Client: client, Embedded: m, Addr: m.Addr(), Mode: config.RedisModeEmbedded, cfg: cfg}, nil
}

// Dial connects to the configured Redis as a client (syncctl, or syncd with
// a real Redis). For "embedded" it dials the daemon's embedded_listen address.
// Secrets must have been resolved (config.ResolveRedisSecrets).
func Dial(ctx context.Context, cfg config.Redis) (*Conn, error) {
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	conn := &Conn{Client: client, Addr: cfg.Describe(), Mode: cfg.Mode(), cfg: cfg}
	if conn.Mode == config.RedisModeEmbedded {
		conn.Addr = cfg.EmbeddedListen
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		switch conn.Mode {
		case config.RedisModeEmbedded:
			return nil, fmt.Errorf("cannot reach syncd's embedded Redis at %s: is syncd running? (%w)", conn.Addr, err)
		case config.RedisModeSentinel:
			return nil, fmt.Errorf("cannot reach the Redis master %q through the sentinels %v: are they running, do they monitor that name, and are redis.sentinel.password and redis.password right? (%w)",
				cfg.Sentinel.Master, cfg.Sentinel.Addrs, err)
		case config.RedisModeCluster:
			return nil, fmt.Errorf("cannot reach the Redis Cluster at %v: is it running with all slots covered, and is redis.password right? (%w)", cfg.Cluster.Addrs, err)
		default:
			return nil, fmt.Errorf("cannot reach Redis at %s: is it running, and are redis.addr/password right? (%w)", conn.Addr, err)
		}
	}
	return conn, nil
}

// Timeouts of every client: a dead server is noticed within seconds, and a
// failover (typically a few seconds) is ridden out by go-redis's retries and
// asynq's own.
const (
	clusterReload = 5 * time.Second
	dialTimeout   = 3 * time.Second
	readTimeout   = 10 * time.Second
	writeTimeout  = 10 * time.Second
)

// NewClient builds the client cfg selects without connecting: a
// *redis.Client for one server (or the embedded one's listen address), a
// Sentinel failover *redis.Client, or a *redis.ClusterClient. asynq takes
// any of them (its *FromRedisClient constructors).
func NewClient(cfg config.Redis) (redis.UniversalClient, error) {
	tlsConfig, err := TLSConfig(cfg)
	if err != nil {
		return nil, err
	}
	switch cfg.Mode() {
	case config.RedisModeSentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       cfg.Sentinel.Master,
			SentinelAddrs:    cfg.Sentinel.Addrs,
			SentinelUsername: cfg.Sentinel.Username,
			SentinelPassword: cfg.Sentinel.Password,
			Username:         cfg.Username,
			Password:         cfg.Password,
			DB:               cfg.DB,
			TLSConfig:        tlsConfig,
			DialTimeout:      dialTimeout,
			ReadTimeout:      readTimeout,
			WriteTimeout:     writeTimeout,
		}), nil
	case config.RedisModeCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cfg.Cluster.Addrs,
			// go-redis follows a moved slot at once (MOVED), but learns that
			// a dead master's slots moved to its replica only from its
			// periodic reload (60 s by default); syncd also reloads when it
			// sees the failover (WatchFailovers), syncctl relies on this.
			ClusterStateReloadInterval: clusterReload,
			Username:                   cfg.Username,
			Password:                   cfg.Password,
			TLSConfig:                  tlsConfig,
			DialTimeout:                dialTimeout,
			ReadTimeout:                readTimeout,
			WriteTimeout:               writeTimeout,
		}), nil
	}
	addr := cfg.Addr
	if cfg.Mode() == config.RedisModeEmbedded {
		addr = cfg.EmbeddedListen
	}
	return redis.NewClient(&redis.Options{
		Addr:         addr,
		Username:     cfg.Username,
		Password:     cfg.Password,
		DB:           cfg.DB,
		TLSConfig:    tlsConfig,
		DialTimeout:  dialTimeout,
		ReadTimeout:  readTimeout,
		WriteTimeout: writeTimeout,
	}), nil
}

// TLSConfig is the TLS setup of every connection (data nodes and
// sentinels), nil without TLS. go-redis uses one TLS configuration for the
// sentinels and the master, so both must speak TLS or neither.
func TLSConfig(cfg config.Redis) (*tls.Config, error) {
	if !cfg.TLS && cfg.TLSCAFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls_ca_file %s: no PEM certificate in it", cfg.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
