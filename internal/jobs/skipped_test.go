package jobs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSkippedRecord(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	a := NewSkipped(rdb, "a", time.Hour)
	b := NewSkipped(rdb, "b", 0)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	require.NoError(t, a.Add(ctx, SkippedFile{Root: "/r1", Path: "/r1/x", Reason: "refused", Since: t0}))
	require.NoError(t, a.Add(ctx, SkippedFile{Root: "/r2", Path: "/r2/y", Reason: "broken", Since: t0}))
	require.NoError(t, b.Add(ctx, SkippedFile{Root: "/r1", Path: "/r1/x", Reason: "on b", Since: t0}))
	assert.Equal(t, time.Hour, mr.TTL(skippedPrefix+"a"))
	assert.Zero(t, mr.TTL(skippedPrefix+"b"))

	// A rescan of /r1 rewrites its entries only, keeping Since of those
	// that did not change.
	require.NoError(t, a.SetRoot(ctx, "/r1", []SkippedFile{
		{Root: "/r1", Path: "/r1/x", Reason: "refused", Since: t0.Add(time.Hour)},
		{Root: "/r1", Path: "/r1/z", Reason: "new", Since: t0.Add(time.Hour)},
	}))
	all, err := ListSkipped(ctx, rdb)
	require.NoError(t, err)
	var got []string
	for _, f := range all {
		got = append(got, fmt.Sprintf("%s %s %s %s", f.Node, f.Path, f.Reason, f.Since.Format(time.TimeOnly)))
	}
	assert.Equal(t, []string{
		"a /r1/x refused 03:04:05", "a /r1/z new 04:04:05", "a /r2/y broken 03:04:05", "b /r1/x on b 03:04:05",
	}, got)

	require.NoError(t, a.Remove(ctx, "/r1/z"))
	require.NoError(t, a.SetRoot(ctx, "/r2", nil))
	all, err = ListSkipped(ctx, rdb)
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, "/r1/x", all[0].Path)

	// The listing reads the hashes of the nodes that recorded something,
	// by name, rather than SCANning the keyspace (which holds every
	// retained task): a hash nobody indexed is not found, and a node whose
	// hash expired lists nothing.
	require.NoError(t, rdb.HSet(ctx, skippedPrefix+"c", "/r/q", `{"node":"c","path":"/r/q"}`).Err())
	mr.FastForward(2 * time.Hour)
	all, err = ListSkipped(ctx, rdb)
	require.NoError(t, err)
	require.Len(t, all, 1, "node a's entries expired")
	assert.Equal(t, "b", all[0].Node)
	nodes, err := rdb.SMembers(ctx, skippedNodesKey).Result()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a", "b"}, nodes)

	// Bounded: a folder of broken links does not fill Redis.
	many := make([]SkippedFile, MaxSkipped+50)
	for i := range many {
		many[i] = SkippedFile{Root: "/big", Path: fmt.Sprintf("/big/%05d", i), Reason: "broken"}
	}
	require.NoError(t, a.SetRoot(ctx, "/big", many))
	require.NoError(t, a.Add(ctx, SkippedFile{Root: "/big", Path: "/big/more", Reason: "broken"}))
	n, err := rdb.HLen(ctx, skippedPrefix+"a").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(MaxSkipped), n)
}
