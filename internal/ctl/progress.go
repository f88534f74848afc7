package ctl

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/imagesync/imagesync/internal/pithos"
)

// progress draws a pithos transfer's progress on stderr when it is a
// terminal (and not with --json); elsewhere it draws nothing. Each phase
// gets a bar of its own: bytes while the local file is checked, blocks
// while they are fetched.
type progress struct {
	out   io.Writer // nil: draw nothing
	what  string
	phase string
	bar   *progressbar.ProgressBar
}

func (a *app) progressBar(what string) *progress {
	p := &progress{what: what}
	if !a.jsonOut && a.opts.Terminal(a.opts.Stderr) {
		p.out = a.stderr
	}
	return p
}

func (p *progress) update(pr pithos.Progress) {
	if p.out == nil {
		return
	}
	if pr.Phase != p.phase {
		p.phase = pr.Phase
		p.clear()
		switch pr.Phase {
		case pithos.PhaseHashing:
			p.bar = p.newBar(pr.TotalBytes, "checking the local file", true)
		case pithos.PhaseDownloading:
			p.bar = p.newBar(pr.BlocksMissing, "fetching missing blocks", false)
		}
	}
	if p.bar == nil {
		return
	}
	switch pr.Phase {
	case pithos.PhaseHashing:
		_ = p.bar.Set64(pr.BytesHashed)
	case pithos.PhaseDownloading:
		_ = p.bar.Set64(pr.BlocksSent)
	}
}

func (p *progress) newBar(max int64, doing string, bytes bool) *progressbar.ProgressBar {
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(p.out),
		progressbar.OptionSetDescription(p.what+": "+doing),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
	)
}

// clear erases the bar, so that what is printed next starts on a clean line.
func (p *progress) clear() {
	if p.bar != nil {
		_ = p.bar.Clear()
		p.bar = nil
	}
}

func (p *progress) done() { p.clear() }
