package ctl

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/nodes"
)

// Node n1 is up (an asynq server serves its queues); node b is down with
// work waiting in its own queues; node old only left a queue (a syncd
// older than the node records). nodes lists all three; status says what
// waits for b.
func TestNodesAndWhatWaitsForThem(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		seen := time.Now().Add(-4 * time.Minute).UTC()
		require.NoError(t, nodes.Write(ctx, e.rdb, nodes.Record{
			Node: "b", Host: "build-2", PID: 42, StartedAt: seen.Add(-time.Hour), Heartbeat: seen,
			Roots:  []nodes.Root{{Dir: "/srv/images", Container: "images"}, {Dir: "/nfs/images", Container: "images", Prefix: "nfs", Shared: true}},
			Queues: []string{"upload:b", "node:b", "upload", "default"},
		}))
		require.NoError(t, nodes.Write(ctx, e.rdb, nodes.Record{Node: "n1", Host: "build-1", PID: 7, Heartbeat: time.Now().UTC(), Queues: []string{"upload:n1", "node:n1"}}))
		for i, q := range []string{jobs.UploadQueue("b"), jobs.UploadQueue("b"), jobs.NodeQueue("b"), jobs.UploadQueue("old")} {
			_, err := e.client.Enqueue(asynq.NewTask(jobs.TypeUpload, []byte(`{"v":1}`)), asynq.Queue(q), asynq.TaskID(string(rune('a'+i))))
			require.NoError(t, err)
		}
		srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{Concurrency: 3, Queues: map[string]int{jobs.NodeQueue("n1"): 1, jobs.QueueDefault: 1}, LogLevel: asynq.FatalLevel})
		require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
		t.Cleanup(srv.Shutdown)
		require.Eventually(t, func() bool { s, _ := e.insp.Servers(); return len(s) == 1 }, 10*time.Second, 20*time.Millisecond)

		var doc NodesDoc
		e.runJSON(&doc, "nodes")
		require.Len(t, doc.Nodes, 3)
		b, n1, old := doc.Nodes[0], doc.Nodes[1], doc.Nodes[2]
		assert.Equal(t, []string{"b", "n1", "old"}, []string{b.Record.Node, n1.Record.Node, old.Record.Node})
		assert.False(t, b.Up)
		assert.Equal(t, Waiting{Uploads: 2, Other: 1}, b.Waiting)
		assert.Equal(t, "build-2", b.Host)
		require.NotNil(t, b.LastSeen)
		assert.WithinDuration(t, seen, *b.LastSeen, time.Second)
		assert.Len(t, b.Roots, 2)
		assert.True(t, n1.Up)
		assert.Equal(t, 3, n1.Concurrency)
		require.Len(t, n1.Servers, 1)
		assert.False(t, old.Up)
		assert.Nil(t, old.LastSeen)
		assert.Equal(t, Waiting{Uploads: 1}, old.Waiting)

		code, out, errOut := e.run("nodes")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "/nfs/images (shared)")
		assert.Contains(t, out, "!! 2 uploads and 1 other job wait for node b, which is down (last seen 4m")
		assert.Contains(t, out, "!! 1 upload waits for node old, which is down (never seen by this Redis)")

		var st StatusDoc
		e.runJSON(&st, "status")
		require.Len(t, st.DownNodes, 2)
		assert.Equal(t, "b", st.DownNodes[0].Node)
		assert.Equal(t, Waiting{Uploads: 2, Other: 1}, st.DownNodes[0].Waiting)
		require.Len(t, st.Workers, 1)
		assert.Equal(t, "n1", st.Workers[0].Node, "which node a worker serves")
		code, out, _ = e.run("status")
		require.Equal(t, 0, code)
		assert.Contains(t, out, "\n  node n1:  ", "the worker line says which node it serves")

		assert.Contains(t, out, "!! 2 uploads and 1 other job wait for node b, which is down (last seen 4m")
	})
}
