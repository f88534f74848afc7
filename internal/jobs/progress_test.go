package jobs

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writes records what a progressWriter writes.
type writes struct {
	mu  sync.Mutex
	got []Progress
}

func (w *writes) Write(b []byte) (int, error) {
	p, ok := DecodeProgress(b)
	if !ok {
		panic("undecodable progress: " + string(b))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, p)
	return len(b), nil
}

func (w *writes) all() []Progress {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Progress(nil), w.got...)
}

func TestProgressWriterFastJobWritesOnce(t *testing.T) {
	w := &writes{}
	pw := newProgressWriter(w, Progress{Phase: PhaseRegistering, Path: "a.diskdump"})
	pw.update(false, func(p *Progress) { p.Note = "working" })
	require.Empty(t, w.all(), "nothing is written before the job has run for an interval")
	pw.update(true, func(p *Progress) { p.Phase = PhaseDone })
	got := w.all()
	require.Len(t, got, 1)
	require.Equal(t, PhaseDone, got[0].Phase)
	require.Equal(t, "a.diskdump", got[0].Path)
	require.False(t, got[0].StartedAt.IsZero())
	time.Sleep(2 * pw.every)
	require.Len(t, w.all(), 1, "the first-interval write was cancelled by the final one")
}

func TestProgressWriterSlowJobIsShownAfterAnInterval(t *testing.T) {
	w := &writes{}
	pw := newProgressWriter(w, Progress{Phase: PhaseRegistering, Path: "b.diskdump"})
	require.Eventually(t, func() bool { return len(w.all()) == 1 }, 20*time.Second, 10*time.Millisecond,
		"a job still running after an interval shows its progress without waiting for an update")
	require.Equal(t, PhaseRegistering, w.all()[0].Phase)
	pw.update(true, func(p *Progress) { p.Phase = PhaseDone })
	require.Len(t, w.all(), 2)

	var none *progressWriter
	none.update(true, func(*Progress) {}) // a nil writer is a no-op
	newProgressWriter(nil, Progress{}).update(true, func(*Progress) {})
}
