package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagesync/imagesync/internal/config"
)

// Failover is a change of master: one the sentinels made, or a cluster
// replica taking over a range of hash slots.
type Failover struct {
	// Master is the monitored name (redis.sentinel.master), or for a
	// cluster the slot range ("slots 0-5460").
	Master string
	// Old and New are the master's host:port before and after.
	Old, New string
}

// switchMasterChannel is where every sentinel announces a failover it
// applied: "<name> <old-ip> <old-port> <new-ip> <new-port>".
const switchMasterChannel = "+switch-master"

// sentinels talks to the sentinels themselves (not through the failover
// client, which hides which master it uses).
type sentinels struct {
	master  string
	addrs   []string
	clients []*redis.SentinelClient
}

func newSentinels(cfg config.Redis) (*sentinels, error) {
	tlsConfig, err := TLSConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &sentinels{master: cfg.Sentinel.Master}
	for _, addr := range cfg.Sentinel.Addrs {
		s.addrs = append(s.addrs, addr)
		s.clients = append(s.clients, redis.NewSentinelClient(&redis.Options{
			Addr: addr, Username: cfg.Sentinel.Username, Password: cfg.Sentinel.Password, TLSConfig: tlsConfig,
			DialTimeout: dialTimeout, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
			// One attempt per sentinel: masterAddr moves on to the next.
			MaxRetries: -1,
		}))
	}
	return s, nil
}

func (s *sentinels) Close() {
	for _, c := range s.clients {
		_ = c.Close()
	}
}

// masterAddr asks the sentinels, in turn, where the master is.
func (s *sentinels) masterAddr(ctx context.Context) (string, error) {
	var errs []error
	for i, c := range s.clients {
		addr, err := c.GetMasterAddrByName(ctx, s.master).Result()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected answer %q", addr)
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", s.addrs[i], err))
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("no sentinel knows master %q: %w", s.master, errors.Join(errs...))
}

// subscribe listens to the first sentinel that takes the subscription.
func (s *sentinels) subscribe(ctx context.Context) *redis.PubSub {
	for _, c := range s.clients {
		ps := c.Subscribe(ctx, switchMasterChannel)
		rctx, cancel := context.WithTimeout(ctx, dialTimeout)
		_, err := ps.Receive(rctx) // the subscription confirmation
		cancel()
		if err == nil {
			return ps
		}
		_ = ps.Close()
	}
	return nil
}

// parseSwitchMaster reads a +switch-master message.
func parseSwitchMaster(payload string) (Failover, bool) {
	f := strings.Fields(payload)
	if len(f) != 5 {
		return Failover{}, false
	}
	return Failover{Master: f[0], Old: net.JoinHostPort(f[1], f[2]), New: net.JoinHostPort(f[3], f[4])}, true
}

// MasterAddr is the master's host:port as the sentinels see it now, or
// "" when Redis is not reached through Sentinel.
func (c *Conn) MasterAddr(ctx context.Context) (string, error) {
	if c.Mode != config.RedisModeSentinel {
		return "", nil
	}
	s, err := newSentinels(c.cfg)
	if err != nil {
		return "", err
	}
	defer s.Close()
	return s.masterAddr(ctx)
}

// WatchFailovers calls report for every change of master until ctx ends; it
// returns at once for the embedded Redis and a single server. go-redis's
// failover and cluster clients follow a new master on their own; this is so
// that syncd can say so and recover what the old master may have lost.
//
// With Sentinel it listens to a sentinel's +switch-master announcements and,
// in case that sentinel is the one that went away, also asks the sentinels
// every poll interval. With a Cluster it reads the slot map every poll
// interval (see watchCluster).
func (c *Conn) WatchFailovers(ctx context.Context, poll time.Duration, report func(Failover)) {
	switch c.Mode {
	case config.RedisModeSentinel:
		c.watchSentinel(ctx, poll, report)
	case config.RedisModeCluster:
		if cc, ok := c.Client.(*redis.ClusterClient); ok {
			watchCluster(ctx, cc, poll, report)
		}
	}
}

func (c *Conn) watchSentinel(ctx context.Context, poll time.Duration, report func(Failover)) {
	s, err := newSentinels(c.cfg)
	if err != nil {
		return // Dial already built the same TLS setup
	}
	defer s.Close()
	current, _ := s.masterAddr(ctx)
	observe := func(addr string) {
		if addr == "" || addr == current {
			return
		}
		if current != "" {
			report(Failover{Master: s.master, Old: current, New: addr})
		}
		current = addr
	}
	var sub *redis.PubSub
	defer func() {
		if sub != nil {
			_ = sub.Close()
		}
	}()
	var msgs <-chan *redis.Message
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if sub == nil {
			if sub = s.subscribe(ctx); sub != nil {
				msgs = sub.Channel()
			}
		}
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				_ = sub.Close()
				sub, msgs = nil, nil
				continue
			}
			if f, ok := parseSwitchMaster(m.Payload); ok && f.Master == s.master {
				observe(f.New)
			}
		case <-t.C:
			if addr, err := s.masterAddr(ctx); err == nil {
				observe(addr)
			}
		}
	}
}
