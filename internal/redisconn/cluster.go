package redisconn

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// watchCluster reports the slot ranges whose master changed. It asks one
// node for the slot map every poll interval (CLUSTER SLOTS); a node may
// still show the old master for a moment after a failover, so a change is
// reported once two reads in a row agree on it.
func watchCluster(ctx context.Context, cc *redis.ClusterClient, poll time.Duration, report func(Failover)) {
	var current, pending map[string]string // slot range -> master host:port
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if next, err := slotMasters(ctx, cc); err == nil {
			switch {
			case current == nil:
				current = next
			case sameMasters(next, pending):
				changed := false
				for rng, addr := range next {
					if old, ok := current[rng]; ok && old != addr {
						changed = true
						report(Failover{Master: "slots " + rng, Old: old, New: addr})
					}
				}
				if changed {
					// A refused connection does not make go-redis reload its
					// slot map (only MOVED does): tell it now rather than at
					// its next periodic reload.
					cc.ReloadState(ctx)
				}
				current, pending = next, nil
			case !sameMasters(next, current):
				pending = next
			default:
				pending = nil
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func slotMasters(ctx context.Context, cc *redis.ClusterClient) (map[string]string, error) {
	// CLUSTER SHARDS, which go-redis prefers, needs Redis 7; CLUSTER SLOTS
	// works on every cluster asynq runs on.
	//lint:ignore SA1019 CLUSTER SLOTS is deprecated but not removed, and the only one Redis 6 has
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range slots {
		if len(s.Nodes) > 0 {
			out[fmt.Sprintf("%d-%d", s.Start, s.End)] = s.Nodes[0].Addr
		}
	}
	return out, nil
}

func sameMasters(a, b map[string]string) bool {
	if a == nil || b == nil || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
