package watch

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/watch/watchtest"
)

func oneTree(t *testing.T, dir string, links LinkPolicy) *Tree {
	t.Helper()
	rs, err := NewRoots([]Root{{Dir: dir, Links: links}})
	require.NoError(t, err)
	return rs.Trees()[0]
}

func TestOpenProbeSeesOpens(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	write(t, p, "x")
	opened := watchtest.OpenProbe(t, p)
	assert.False(t, opened())
	f, err := os.Open(p)
	require.NoError(t, err)
	f.Close()
	assert.True(t, opened(), "the probe sees an open")
}

// TestOpenReadsOnlyTheCheckedFile swaps what a path leads to after the check
// that settled it, in every way a writer of the folder can: the file that is
// opened is the one checked, or nothing is, and a target outside the roots is
// never even opened.
func TestOpenReadsOnlyTheCheckedFile(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	secret := filepath.Join(outside, "secret.diskdump")
	write(t, secret, "SECRET")
	write(t, filepath.Join(outside, "dir", "x.diskdump"), "SECRET too")
	linkTo := func(target, at string) {
		tmp := at + ".new"
		require.NoError(t, os.Symlink(target, tmp))
		require.NoError(t, os.Rename(tmp, at))
	}

	for _, tc := range []struct {
		name string
		rel  string
		prep func() // the tree as it was checked
		swap func() // what a writer does after the check
		hook bool   // swap between Open's own check and its open
		want func(*testing.T, *os.File, error)
	}{
		{
			name: "link re-pointed outside before the open",
			rel:  "img.diskdump",
			prep: func() {
				write(t, filepath.Join(root, "data", "target"), "inside")
				linkTo(filepath.Join(root, "data", "target"), filepath.Join(root, "img.diskdump"))
			},
			swap: func() { linkTo(secret, filepath.Join(root, "img.diskdump")) },
			want: func(t *testing.T, f *os.File, err error) { assert.ErrorIs(t, err, ErrLinkRefused) },
		},
		{
			name: "link re-pointed outside inside Open's window: the checked target is read",
			rel:  "img.diskdump",
			prep: func() {
				write(t, filepath.Join(root, "data", "target"), "inside")
				linkTo(filepath.Join(root, "data", "target"), filepath.Join(root, "img.diskdump"))
			},
			swap: func() { linkTo(secret, filepath.Join(root, "img.diskdump")) },
			hook: true,
			want: func(t *testing.T, f *os.File, err error) {
				require.NoError(t, err)
				b := make([]byte, 16)
				n, _ := f.Read(b)
				assert.Equal(t, "inside", string(b[:n]))
			},
		},
		{
			name: "the link's target itself replaced by a link outside, in the window",
			rel:  "img.diskdump",
			prep: func() {
				write(t, filepath.Join(root, "data", "target"), "inside")
				linkTo(filepath.Join(root, "data", "target"), filepath.Join(root, "img.diskdump"))
			},
			swap: func() { linkTo(secret, filepath.Join(root, "data", "target")) },
			hook: true,
			want: func(t *testing.T, f *os.File, err error) { assert.Error(t, err) },
		},
		{
			name: "a plain file replaced by a link outside, in the window",
			rel:  "plain.diskdump",
			prep: func() { write(t, filepath.Join(root, "plain.diskdump"), "plain") },
			swap: func() { linkTo(secret, filepath.Join(root, "plain.diskdump")) },
			hook: true,
			want: func(t *testing.T, f *os.File, err error) { assert.Error(t, err) },
		},
		{
			name: "its directory replaced by a link outside",
			rel:  "dir/x.diskdump",
			prep: func() { write(t, filepath.Join(root, "dir", "x.diskdump"), "plain") },
			swap: func() {
				require.NoError(t, os.Rename(filepath.Join(root, "dir"), filepath.Join(root, "old")))
				require.NoError(t, os.Symlink(filepath.Join(outside, "dir"), filepath.Join(root, "dir")))
			},
			want: func(t *testing.T, f *os.File, err error) { assert.ErrorIs(t, err, ErrChanged) },
		},
		{
			name: "its directory replaced by a link outside, in the window",
			rel:  "dir/x.diskdump",
			prep: func() { write(t, filepath.Join(root, "dir", "x.diskdump"), "plain") },
			swap: func() {
				require.NoError(t, os.Rename(filepath.Join(root, "dir"), filepath.Join(root, "old")))
				require.NoError(t, os.Symlink(filepath.Join(outside, "dir"), filepath.Join(root, "dir")))
			},
			hook: true,
			want: func(t *testing.T, f *os.File, err error) { assert.Error(t, err) },
		},
		{
			name: "a FIFO swapped in, in the window, does not block",
			rel:  "plain.diskdump",
			prep: func() { write(t, filepath.Join(root, "plain.diskdump"), "plain") },
			swap: func() {
				tmp := filepath.Join(root, "fifo.tmp")
				require.NoError(t, syscall.Mkfifo(tmp, 0o644))
				require.NoError(t, os.Rename(tmp, filepath.Join(root, "plain.diskdump")))
			},
			hook: true,
			want: func(t *testing.T, f *os.File, err error) { assert.ErrorIs(t, err, ErrChanged) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, os.RemoveAll(root))
			require.NoError(t, os.MkdirAll(root, 0o755))
			tc.prep()
			tr := oneTree(t, root, "")
			e := tr.Lstat(tc.rel)
			require.True(t, e.Usable(), "%+v", e)
			want := e.ID()
			probes := []func() bool{watchtest.OpenProbe(t, secret), watchtest.OpenProbe(t, filepath.Join(outside, "dir", "x.diskdump"))}
			if tc.hook {
				tr.beforeOpen = tc.swap
			} else {
				tc.swap()
			}
			done := make(chan struct{})
			var f *os.File
			var err error
			go func() { defer close(done); f, err = tr.Open(tc.rel, want) }()
			select {
			case <-done:
			case <-time.After(deadline):
				t.Fatal("Open blocked")
			}
			if f != nil {
				defer f.Close()
				fi, serr := f.Stat()
				require.NoError(t, serr)
				assert.Equal(t, want, IDOf(fi), "an opened file is the checked one")
			}
			tc.want(t, f, err)
			for _, opened := range probes {
				assert.False(t, opened(), "a file outside the roots was opened")
			}
		})
	}
}
