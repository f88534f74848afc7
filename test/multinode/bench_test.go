package multinode

import (
	"testing"
	"time"
)

// BenchmarkFortyImages times 40 images (10 on each of three nodes, plus 10
// on a shared root) from the nodes' start until all are registered and the
// queues are idle, on three nodes and, in the same run, on one node holding
// the same 40 (30 of its own plus the 10 shared). Blocks are 64 KiB and the
// sandbox answers each block upload and hashmap PUT after 20 ms, standing in
// for a network; all nodes share this machine's CPUs, which real build hosts
// would not.
//
//	go test -run '^$' -bench FortyImages -benchtime 1x ./test/multinode/
func BenchmarkFortyImages(b *testing.B) {
	const size = 16*blockSize + 100 // ~1 MiB, 17 blocks
	var three, one time.Duration
	for range b.N {
		three += fortyImages(b, []string{"a", "b", "c"}, 10, size)
		one += fortyImages(b, []string{"solo"}, 30, size)
	}
	b.ReportMetric(three.Seconds()/float64(b.N), "s/3-nodes")
	b.ReportMetric(one.Seconds()/float64(b.N), "s/1-node")
	b.ReportMetric(one.Seconds()/three.Seconds(), "speedup")
}

func fortyImages(b *testing.B, names []string, perNode, size int) time.Duration {
	b.Helper()
	cloud := newCloud(b)
	cloud.SetLatency(20 * time.Millisecond)
	c := newCluster(b, cloud, names...)
	for _, name := range names {
		c.fillNode(name, perNode, size)
	}
	c.fillShared(10, size)
	want := len(names)*perNode + 10
	start := time.Now()
	for _, name := range names {
		c.start(name)
	}
	waitAllDone(b, c, want, 5*time.Minute, "40 images registered")
	took := time.Since(start)
	for _, name := range names {
		c.nodes[name].proc.Kill(b)
	}
	b.Logf("%d images on %d node(s): %s", want, len(names), took.Round(10*time.Millisecond))
	return took
}
