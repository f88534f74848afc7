package daemon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/imagesync/imagesync/internal/watch"
)

func TestFollowedByUpload(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	img := watch.ImageReady{Root: "/r", RelPath: "a/x.diskdump"}
	meta := func(since time.Time) watch.MetaChanged {
		return watch.MetaChanged{Root: "/r", RelPath: "a/x.diskdump.meta", Affects: "a/x.diskdump", Since: since}
	}
	for _, tc := range []struct {
		name   string
		queued bool // an upload of img was queued at t0
		ev     watch.MetaChanged
		want   bool
	}{
		{"no upload queued by this daemon", false, meta(t0.Add(-time.Second)), false},
		{"metafile as it is before the upload was queued", true, meta(t0.Add(-time.Second)), true},
		{"metafile changed after the upload was queued", true, meta(t0.Add(time.Second)), false},
		{"at the same instant is not after", true, meta(t0), false},
		{"a removal is always followed", true, func() watch.MetaChanged { e := meta(t0.Add(-time.Second)); e.Removed = true; return e }(), false},
		{"no time known", true, meta(time.Time{}), false},
		{"a template settled before the upload", true, watch.MetaChanged{Root: "/r", RelPath: "a/_template.meta", Template: true, Affects: "a", Since: t0.Add(-time.Second)}, true},
		{"another root's image", true, watch.MetaChanged{Root: "/other", RelPath: "a/x.diskdump.meta", Affects: "a/x.diskdump", Since: t0.Add(-time.Second)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dispatcher{}
			if tc.queued {
				d.uploadQueued(imageKey{"/r", "a/x.diskdump"}, t0)
			}
			target := img
			target.Root = tc.ev.Root
			assert.Equal(t, tc.want, d.followedByUpload(tc.ev, target))
		})
	}
}

func TestFollowedByUploadForgets(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	img := watch.ImageReady{Root: "/r", RelPath: "x.diskdump"}
	ev := watch.MetaChanged{Root: "/r", RelPath: "x.diskdump.meta", Affects: "x.diskdump", Since: t0.Add(-time.Second)}
	d := &dispatcher{}
	d.uploadQueued(imageKey{"/r", "x.diskdump"}, t0)
	// A template affecting the image leaves the note for its own metafile.
	tmpl := watch.MetaChanged{Root: "/r", RelPath: "_template.meta", Template: true, Since: t0.Add(-time.Second)}
	assert.True(t, d.followedByUpload(tmpl, img))
	// The image's own metafile uses the note up: a later report of the same
	// metafile (a rescan after a Redis loss) is followed again.
	assert.True(t, d.followedByUpload(ev, img))
	assert.False(t, d.followedByUpload(ev, img))

	// Notes older than uploadsQueuedMemory go when new ones are made.
	d.uploadQueued(imageKey{"/r", "x.diskdump"}, t0)
	d.uploadQueued(imageKey{"/r", "y.diskdump"}, t0.Add(uploadsQueuedMemory+time.Minute))
	assert.Len(t, d.uploadsQueued, 1)
	assert.False(t, d.followedByUpload(ev, img))
}
