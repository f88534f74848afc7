package redisconn

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ScanKeys lists the keys matching pattern without blocking Redis (SCAN).
// On a Redis Cluster it scans every master: a SCAN sent through the cluster
// client reaches one node only, and the keys live on all of them.
func ScanKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return scanKeys(ctx, rdb, pattern)
	}
	var mu sync.Mutex
	var keys []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		ks, err := scanKeys(ctx, c, pattern)
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	})
	return keys, err
}

func scanKeys(ctx context.Context, rdb redis.Cmdable, pattern string) ([]string, error) {
	var keys []string
	iter := rdb.Scan(ctx, 0, pattern, 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}
