// Package pithos is the sandbox's Pithos+ object store API
// (snf-pithos-app pithos/api: functions.py, util.py, public.py) over the
// shared store: accounts, containers, objects, hashmap uploads, blocks,
// sharing, public URLs, and the history views of ?until.
package pithos

import (
	"sync/atomic"
	"time"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/store"
)

// Handler serves the object-store API (below /object-store/v1) and public
// URLs (below /public/).
type Handler struct {
	store  *store.Store
	users  *astakos.Directory
	quota  int64 // each account's pithos.diskspace limit, reported in headers
	faults *injector
	stats  counters
}

// Options are the deployment's settings and the injected faults.
type Options struct {
	// Quota is each user's pithos.diskspace limit in bytes; 0 is unlimited.
	Quota int64
	// FailRate is the fraction of block uploads and hashmap PUTs answered 503.
	FailRate float64
	// Latency delays block uploads and hashmap PUTs.
	Latency time.Duration
}

// New returns the Pithos+ handlers over st, authenticating with users.
func New(st *store.Store, users *astakos.Directory, o Options) *Handler {
	return &Handler{store: st, users: users, quota: o.Quota, faults: newInjector(o.FailRate, o.Latency)}
}

// SetFailRate changes the 503 injection rate at run time.
func (s *Handler) SetFailRate(f float64) { s.faults.setFailRate(f) }

// SetLatency changes the injected delay at run time.
func (s *Handler) SetLatency(d time.Duration) { s.faults.setLatency(d) }

type counters struct {
	blocksReceived     atomic.Int64
	blockBytesReceived atomic.Int64
	hashmapPuts        atomic.Int64
	objectPuts         atomic.Int64
}

// Stats are the Pithos+ counters of /_sandbox/stats.
type Stats struct {
	BlocksReceived     int64
	BlockBytesReceived int64
	HashmapPuts        int64
	ObjectPuts         int64
	FaultsInjected     int64
}

// Stats returns the counters so far.
func (s *Handler) Stats() Stats {
	return Stats{
		BlocksReceived: s.stats.blocksReceived.Load(), BlockBytesReceived: s.stats.blockBytesReceived.Load(),
		HashmapPuts: s.stats.hashmapPuts.Load(), ObjectPuts: s.stats.objectPuts.Load(),
		FaultsInjected: s.faults.injectedCount(),
	}
}
