package pithos

import (
	"crypto/rand"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// injector applies --latency and --fail-rate to block uploads and hashmap
// PUTs, the requests a client retries.
type injector struct {
	failRate atomic.Uint64 // math.Float64bits
	latency  atomic.Int64  // nanoseconds
	injected atomic.Int64
	rngMu    sync.Mutex
	rng      *mrand.Rand
}

func newInjector(failRate float64, latency time.Duration) *injector {
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	in := &injector{rng: mrand.New(mrand.NewPCG(uint64FromBytes(seed[:8]), uint64FromBytes(seed[8:])))}
	in.setFailRate(failRate)
	in.setLatency(latency)
	return in
}

// injectedCount is the number of 503s injected so far.
func (in *injector) injectedCount() int64 { return in.injected.Load() }

func (in *injector) setFailRate(f float64)      { in.failRate.Store(math.Float64bits(f)) }
func (in *injector) setLatency(d time.Duration) { in.latency.Store(int64(d)) }

// inject delays the request and reports true when it has answered it with
// a 503.
func (in *injector) inject(w http.ResponseWriter, r *http.Request) bool {
	if d := time.Duration(in.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-r.Context().Done():
			t.Stop()
		case <-t.C:
		}
	}
	rate := math.Float64frombits(in.failRate.Load())
	if rate <= 0 {
		return false
	}
	in.rngMu.Lock()
	fail := in.rng.Float64() < rate
	in.rngMu.Unlock()
	if !fail {
		return false
	}
	in.injected.Add(1)
	wire.WriteFault(w, r, http.StatusServiceUnavailable, wire.FaultUnavailable, "Service Unavailable (injected by snf-sandbox --fail-rate)", "")
	return true
}

func uint64FromBytes(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}
