package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// RegisteredByKey is a hash from each image's location (pithos://…) to the
// node that registered it from one of its own roots. Several nodes usually
// write under one remote folder, each from files only it has: a node's
// sweep then finds the other nodes' images there with no local file, and
// this record tells them apart from orphans. Images of shared roots, which
// every node sees, have no entry.
const RegisteredByKey = "imagesync:registered-by"

// noteRegisteredBy records in rdb (a pipeline, usually) that node
// registered the image at location, or, with node "", forgets who did.
func noteRegisteredBy(ctx context.Context, rdb redis.Cmdable, location, node string) {
	if node == "" {
		rdb.HDel(ctx, RegisteredByKey, location)
		return
	}
	rdb.HSet(ctx, RegisteredByKey, location, node)
}

// registeredByBatch bounds one HMGET.
const registeredByBatch = 1000

// RegisteredBy tells which node registered each of locations, as far as
// it is recorded (a location missing from the map: unknown).
func RegisteredBy(ctx context.Context, rdb redis.UniversalClient, locations []string) (map[string]string, error) {
	out := map[string]string{}
	for start := 0; start < len(locations); start += registeredByBatch {
		batch := locations[start:min(start+registeredByBatch, len(locations))]
		vals, err := rdb.HMGet(ctx, RegisteredByKey, batch...).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("reading %s: %w", RegisteredByKey, redisUnavailable(err))
		}
		for i, v := range vals {
			if s, ok := v.(string); ok && s != "" {
				out[batch[i]] = s
			}
		}
	}
	return out, nil
}
