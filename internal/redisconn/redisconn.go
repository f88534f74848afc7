// Package redisconn opens the Redis that carries imagesync's queue: a real
// server (host:port, optional password/TLS) or, with addr "embedded", an
// in-process miniredis that listens on loopback so syncctl can reach it.
package redisconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/imagesync/imagesync/internal/config"
)

// Conn is an open connection, and the embedded server when there is one.
type Conn struct {
	Client   *redis.Client
	Embedded *miniredis.Miniredis
	// Addr is where the server listens (for messages).
	Addr string
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
	if cfg.Addr != config.EmbeddedRedis {
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
	return &Conn{Client: client, Embedded: m, Addr: m.Addr()}, nil
}

// Dial connects to the configured Redis as a client (syncctl, or syncd with
// a real Redis). For "embedded" it dials the daemon's embedded_listen address.
func Dial(ctx context.Context, cfg config.Redis) (*Conn, error) {
	addr := cfg.Addr
	embedded := addr == config.EmbeddedRedis
	if embedded {
		addr = cfg.EmbeddedListen
	}
	opts := &redis.Options{
		Addr:         addr,
		Password:     cfg.Password,
		DB:           cfg.DB,
		DialTimeout:  3 * time.Second,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
	}
	if cfg.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	client := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		if embedded {
			return nil, fmt.Errorf("cannot reach syncd's embedded Redis at %s: is syncd running? (%w)", addr, err)
		}
		return nil, fmt.Errorf("cannot reach Redis at %s: is it running, and are redis.addr/password right? (%w)", addr, err)
	}
	return &Conn{Client: client, Addr: addr}, nil
}
