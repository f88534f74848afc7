package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A block upload (POST <container>?update with only block data) touches no
// container metadata, so it must not pay for a metadata transaction:
// container_update (snf-pithos-app api/functions.py) calls
// update_container_policy only when policy headers are sent and
// update_container_meta only "if meta or replace".
func TestBlockPostMakesNoMetadataCommit(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", map[string]string{"X-Container-Meta-Keep": "yes"})
	octet := map[string]string{"Content-Type": "application/octet-stream"}

	before := e.srv.Stats().MetaCommits
	for i := range 5 {
		r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=json", octet, psData(psBlock, byte(i)))
		require.Equal(t, http.StatusAccepted, r.status, "%s", r)
	}
	assert.Equal(t, before, e.srv.Stats().MetaCommits, "block POSTs with ?update and no meta made metadata commits")
	assert.Equal(t, before, statsCounter(t, e, "meta_commits"), "/_sandbox/stats reports the same counter")

	// What does change container metadata commits, as on the real server.
	cases := []struct {
		name  string
		query string
		hdr   map[string]string
	}{
		{"meta with ?update", "?update", map[string]string{"Content-Type": "application/octet-stream", "X-Container-Meta-Extra": "1"}},
		{"policy with ?update", "?update", map[string]string{"Content-Type": "application/octet-stream", "X-Container-Policy-Versioning": "auto"}},
		{"no ?update (meta replaced)", "", octet},
	}
	for _, c := range cases {
		before := e.srv.Stats().MetaCommits
		r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c")+c.query, c.hdr, []byte("block"))
		require.Equal(t, http.StatusAccepted, r.status, "%s: %s", c.name, r)
		assert.Greater(t, e.srv.Stats().MetaCommits, before, c.name)
	}
}

func statsCounter(t *testing.T, e *psEnv, name string) int64 {
	t.Helper()
	resp, err := http.Get(e.hs.URL + "/_sandbox/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var v map[string]int64
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return v[name]
}

// Concurrent block POSTs are not serialised: every one of n uploads is
// inside the block store's write at the same moment. A lock around block
// writes would let only one in, and the rendezvous would never complete.
func TestBlockPostsProceedInParallel(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	const n = 6
	var entered, inside, peak atomic.Int32
	all := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.srv.store.OnBlockWritten(func() {
		cur := inside.Add(1)
		defer inside.Add(-1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		if entered.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
		case <-ctx.Done():
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.try(&psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=json",
				map[string]string{"Content-Type": "application/octet-stream"}, psData(psBlock, byte(100+i)))
			if err == nil && r.status != http.StatusAccepted {
				err = fmt.Errorf("block POST: %s", r)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.NoError(t, ctx.Err(), "at most %d of %d block writes were in progress at once", peak.Load(), n)
	assert.EqualValues(t, n, peak.Load())
}

// BenchmarkBlockPost measures 1 MiB block uploads through the handler on
// loopback with perCPU×GOMAXPROCS uploads in flight (run with -cpu 1,2);
// commits/op is the metadata transactions per upload, which must be 0.
func BenchmarkBlockPost(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("perCPU=%d", par), func(b *testing.B) {
			const bs = 1 << 20
			e := newBenchEnv(b, bs)
			var seq atomic.Int64
			base := psData(bs, 0)
			b.SetBytes(bs)
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				data := append([]byte(nil), base...)
				for pb.Next() {
					// Distinct blocks: a repeated one is found on disk and not written.
					n := seq.Add(1)
					for k := range 8 {
						data[k] = byte(n >> (8 * k))
					}
					r, err := e.try(&psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=json",
						map[string]string{"Content-Type": "application/octet-stream"}, data)
					if err != nil || r.status != http.StatusAccepted {
						b.Errorf("block POST: %v %s", err, r)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(e.srv.Stats().MetaCommits-e.commits0)/float64(b.N), "commits/op")
		})
	}
}

type benchEnv struct {
	*psEnv
	commits0 int64
}

func newBenchEnv(b *testing.B, blockSize int) *benchEnv {
	b.Helper()
	cfg := Config{Users: []User{psAlice, psBob}, DataDir: b.TempDir(), BlockSize: blockSize}
	srv, err := New(cfg)
	require.NoError(b, err)
	e := &psEnv{cfg: cfg, srv: srv}
	e.hs = httptest.NewServer(srv.Handler())
	// Keep one connection per uploader instead of redialling.
	e.hs.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	e.base = e.hs.URL + "/object-store/v1"
	b.Cleanup(func() {
		e.hs.Close()
		_ = srv.Close()
	})
	r, err := e.try(&psAlice, http.MethodPut, pp(psAlice.UUID, "c"), nil, nil)
	require.NoError(b, err)
	require.Equal(b, http.StatusCreated, r.status)
	return &benchEnv{psEnv: e, commits0: srv.Stats().MetaCommits}
}
