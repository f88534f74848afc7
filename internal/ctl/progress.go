package ctl

import (
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/imagesync/imagesync/internal/pithos"
)

// progress draws a pithos transfer's progress on stderr when it is a
// terminal (and not with --json); elsewhere it draws nothing.
type progress struct {
	bar   *progressbar.ProgressBar
	what  string
	phase string
}

func (a *app) progressBar(what string) *progress {
	p := &progress{what: what}
	if a.jsonOut || !a.opts.Terminal(a.opts.Stderr) {
		return p
	}
	p.bar = progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(true),
	)
	return p
}

// update follows pithos' Progress: bytes while the local file is hashed,
// blocks while they are fetched.
func (p *progress) update(pr pithos.Progress) {
	if p.bar == nil {
		return
	}
	if pr.Phase != p.phase {
		p.phase = pr.Phase
		switch pr.Phase {
		case pithos.PhaseHashing:
			p.bar.Describe(p.what + ": checking the local file")
			p.bar.ChangeMax64(pr.TotalBytes)
		case pithos.PhaseDownloading:
			p.bar.Describe(p.what + ": fetching missing blocks")
			p.bar.ChangeMax64(pr.BlocksMissing)
			p.bar.Reset()
		}
	}
	switch pr.Phase {
	case pithos.PhaseHashing:
		_ = p.bar.Set64(pr.BytesHashed)
	case pithos.PhaseDownloading:
		_ = p.bar.Set64(pr.BlocksSent)
	}
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
