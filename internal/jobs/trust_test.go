package jobs

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
	"github.com/imagesync/imagesync/internal/watch/watchtest"
)

// Tests of the drop folder as a trust boundary (issue 13): what a person
// who can write to a watched folder can, and cannot, make syncd do.

// sandboxHolds reports whether any file the sandbox stored holds marker:
// blocks are stored as written, so content that reached the cloud is found.
func sandboxHolds(t *testing.T, dataDir string, marker []byte) bool {
	t.Helper()
	found := false
	require.NoError(t, filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found = bytes.Contains(b, marker)
		return nil
	}))
	return found
}

func marker(name string) []byte {
	return bytes.Repeat([]byte("<<"+name+" must never reach the cloud>>"), 200)
}

func relink(t *testing.T, target, at string) {
	t.Helper()
	tmp := at + ".swap"
	require.NoError(t, os.Symlink(target, tmp))
	require.NoError(t, os.Rename(tmp, at))
}

// TestALinkOutsideTheRootsIsNotUploadedWhileOneInsideIs: a symlinked image
// whose target is outside every watch root is refused by the scan (so no
// task is made for it) and, should a task name it anyway, by the upload,
// which archives it naming the link, its target and the rule. A link to an
// image inside the root is uploaded and registered.
func TestALinkOutsideTheRootsIsNotUploadedWhileOneInsideIs(t *testing.T) {
	data := t.TempDir()
	p := newPipeline(t, sandbox.Config{DataDir: data}, "", config.Watch{})
	outside := filepath.Join(t.TempDir(), "secret.bin")
	require.NoError(t, os.WriteFile(outside, marker("outside"), 0o644))
	inside := marker("inside")
	p.write("real/built.img", inside)
	require.NoError(t, os.Symlink("real/built.img", filepath.Join(p.root, "good.diskdump")))
	require.NoError(t, os.Symlink(outside, filepath.Join(p.root, "evil.diskdump")))

	res, err := Scan(p.ctx, p.catalog.Roots())
	require.NoError(t, err)
	require.Len(t, res.Images, 1)
	assert.Equal(t, "good.diskdump", res.Images[0].RelPath)
	require.Len(t, res.Problems, 1)
	assert.Equal(t, "evil.diskdump", res.Problems[0].RelPath)
	assert.Contains(t, res.Problems[0].Error(), filepath.Join(p.root, "evil.diskdump")+" -> "+outside)
	_, err = StatImage(p.catalog.Roots(), filepath.Join(p.root, "evil.diskdump"))
	require.ErrorContains(t, err, "outside every watch root")

	up, err := p.catalog.UploadRequest(res.Images[0], false)
	p.enqueue(up, err)
	p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
	require.Eventually(t, func() bool { return p.image("good.diskdump") != nil }, 10*time.Second, 20*time.Millisecond)
	assert.True(t, sandboxHolds(t, data, inside[:64]), "the detector finds uploaded content")

	// A task for the outside link, as an older syncd (following every
	// link) would have queued it.
	fi, err := os.Stat(outside)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	evil := FileFacts{Root: p.root, RelPath: "evil.diskdump", Size: fi.Size(), ModTime: fi.ModTime(), Dev: st.Dev, Inode: st.Ino}
	probe := watchtest.OpenProbe(t, outside)
	up, err = p.catalog.UploadRequest(evil, false)
	p.enqueue(up, err)
	info := p.wait(up.Queue, up.ID, asynq.TaskStateArchived)
	assert.Contains(t, info.LastErr, "follow_symlinks")
	assert.Contains(t, info.LastErr, filepath.Join(p.root, "evil.diskdump")+" -> "+outside)
	assert.False(t, probe(), "the outside file was opened")
	assert.False(t, sandboxHolds(t, data, marker("outside")[:64]), "outside content reached the cloud")
	assert.Nil(t, p.image("evil.diskdump"))
}

// TestALinkSwappedAfterTheCheckNeverLeaksTheNewTarget: the watcher settled
// a link to an image inside the root; before the upload runs, the link is
// pointed at a file outside. The upload must neither open nor send the new
// target.
func TestALinkSwappedAfterTheCheckNeverLeaksTheNewTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		swap   func(t *testing.T, root, link, secret string)
		closed bool // the target itself was replaced: nothing may be uploaded
	}{
		{name: "link re-pointed", swap: func(t *testing.T, root, link, secret string) { relink(t, secret, link) }},
		{name: "target replaced by a link", closed: true, swap: func(t *testing.T, root, link, secret string) {
			relink(t, secret, filepath.Join(root, "real", "built.img"))
		}},
		{name: "target's directory replaced by a link", closed: true, swap: func(t *testing.T, root, link, secret string) {
			require.NoError(t, os.Rename(filepath.Join(root, "real"), filepath.Join(root, "old")))
			require.NoError(t, os.MkdirAll(filepath.Join(filepath.Dir(secret), "real"), 0o755))
			require.NoError(t, os.Link(secret, filepath.Join(filepath.Dir(secret), "real", "built.img")))
			require.NoError(t, os.Symlink(filepath.Join(filepath.Dir(secret), "real"), filepath.Join(root, "real")))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			p := newPipeline(t, sandbox.Config{DataDir: data}, "", config.Watch{})
			secret := filepath.Join(t.TempDir(), "secret.bin")
			require.NoError(t, os.WriteFile(secret, marker("secret"), 0o644))
			p.write("real/built.img", marker("inside"))
			link := filepath.Join(p.root, "img.diskdump")
			require.NoError(t, os.Symlink("real/built.img", link))
			f, err := StatImage(p.catalog.Roots(), link)
			require.NoError(t, err)

			tc.swap(t, p.root, link, secret)
			probe := watchtest.OpenProbe(t, secret)
			up, err := p.catalog.UploadRequest(f, false)
			p.enqueue(up, err)
			require.Eventually(t, func() bool {
				info, err := p.insp.GetTaskInfo(up.Queue, up.ID)
				return err == nil && (info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived)
			}, 20*time.Second, 20*time.Millisecond)

			assert.False(t, probe(), "the new target was opened")
			assert.False(t, sandboxHolds(t, data, marker("secret")[:64]), "the new target reached the cloud")
			if tc.closed {
				assert.Nil(t, p.image("img.diskdump"))
			}
		})
	}
}

// TestPolicyCaps: each cap of a watch root refuses with an archived failure
// naming the file and the rule, and lets through what it allows.
func TestPolicyCaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown files to another owner")
	}
	no := false
	const nobody = 65534
	tests := []struct {
		name  string
		watch config.Watch
		files map[string]string
		chown []string // files given to nobody
		// which task is archived: the upload, or the registration after it
		register bool
		file     string
		rule     string
		ok       string // an image of the same folder that passes
	}{
		{
			name:  "owners refuses an image of another owner",
			watch: config.Watch{Owners: []string{"user:0"}},
			chown: []string{"bad.diskdump"},
			file:  "bad.diskdump", rule: "owners", ok: "good.diskdump",
		},
		{
			name:     "owners refuses a metafile of another owner",
			watch:    config.Watch{Owners: []string{"user:0", "group:0"}},
			files:    map[string]string{"bad.diskdump.meta": `{"name": "planted"}`},
			chown:    []string{"bad.diskdump.meta"},
			register: true, file: "bad.diskdump.meta", rule: "owners", ok: "good.diskdump",
		},
		{
			name:     "allow_public refuses a template that makes images public",
			watch:    config.Watch{AllowPublic: &no},
			files:    map[string]string{"pub/_template.meta": `{"is-public": true}`},
			register: true, file: "pub/_template.meta", rule: "allow_public", ok: "good.diskdump",
		},
		{
			name:     "allow_public refuses a metafile that makes its image public",
			watch:    config.Watch{AllowPublic: &no},
			files:    map[string]string{"bad.diskdump.meta": `{"is-public": "True"}`},
			register: true, file: "bad.diskdump.meta", rule: "allow_public", ok: "good.diskdump",
		},
		{
			name:  "allowed_members refuses a member not on the list",
			watch: config.Watch{AllowedMembers: []string{sandboxtest.Bob.UUID}},
			files: map[string]string{
				"bad.diskdump.meta":  `{"members": ["` + sandboxtest.Bob.UUID + `", "c0ffee00-0000-4000-8000-000000000009"]}`,
				"good.diskdump.meta": `{"members": ["` + sandboxtest.Bob.UUID + `"]}`,
			},
			register: true, file: "bad.diskdump.meta", rule: "allowed_members", ok: "good.diskdump",
		},
		{
			name:     "allowed_members: [] allows no members",
			watch:    config.Watch{AllowedMembers: []string{}},
			files:    map[string]string{"bad.diskdump.meta": `{"members": ["` + sandboxtest.Bob.UUID + `"]}`},
			register: true, file: "bad.diskdump.meta", rule: "allowed_members", ok: "good.diskdump",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipeline(t, sandbox.Config{}, "", tt.watch)
			for rel, content := range tt.files {
				p.write(rel, []byte(content))
			}
			bad := "bad.diskdump"
			if filepath.Dir(tt.file) != "." {
				bad = filepath.Dir(tt.file) + "/bad.diskdump"
			}
			badFacts := p.write(bad, []byte("image bytes of bad"))
			okFacts := p.write(tt.ok, []byte("image bytes of ok"))
			for _, rel := range tt.chown {
				require.NoError(t, os.Lchown(filepath.Join(p.root, rel), nobody, nobody))
			}

			var ids []string
			for _, f := range []FileFacts{badFacts, okFacts} {
				up, err := p.catalog.UploadRequest(f, false)
				p.enqueue(up, err)
				ids = append(ids, up.ID)
			}
			var info *asynq.TaskInfo
			if tt.register {
				p.wait(UploadQueue("n1"), ids[0], asynq.TaskStateCompleted)
				reg, err := p.catalog.RegisterRequest(badFacts, hashOf(p, bad), "", "upload", false)
				require.NoError(t, err)
				info = p.wait(reg.Queue, reg.ID, asynq.TaskStateArchived)
			} else {
				info = p.wait(UploadQueue("n1"), ids[0], asynq.TaskStateArchived)
			}
			assert.Contains(t, info.LastErr, filepath.Join(p.root, filepath.FromSlash(tt.file)))
			assert.Contains(t, info.LastErr, "the "+tt.rule+" rule of watch root "+p.root)
			assert.Nil(t, p.image(bad), "the refused image is not registered")

			require.Eventually(t, func() bool { return p.image(tt.ok) != nil }, 10*time.Second, 20*time.Millisecond,
				"what the cap allows goes through")
		})
	}
}

// TestAnOversizedMetafileIsRefusedUnread: a 50 MiB metafile fails the
// registration with a message naming it, and neither the fingerprint nor
// the registration reads it.
func TestAnOversizedMetafileIsRefusedUnread(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	f := p.write("a.diskdump", []byte("image"))
	meta := filepath.Join(p.root, "a.diskdump.meta")
	mf, err := os.Create(meta)
	require.NoError(t, err)
	require.NoError(t, mf.Truncate(50<<20)) // sparse: 50 MiB of zeros
	require.NoError(t, mf.Close())
	probe := watchtest.OpenProbe(t, meta)

	up, err := p.catalog.UploadRequest(f, false)
	p.enqueue(up, err)
	p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
	reg, err := p.catalog.RegisterRequest(f, hashOf(p, "a.diskdump"), "", "upload", false)
	require.NoError(t, err)
	info := p.wait(reg.Queue, reg.ID, asynq.TaskStateArchived)
	assert.Contains(t, info.LastErr, meta+": file is 52428800 bytes, more than the 1048576 a metafile may have; it was not read")
	assert.Nil(t, p.image("a.diskdump"))
	assert.True(t, probe(), "opened, to be measured")
	// IN_ACCESS is raised by a read; opening is not reading.
	read := watchtest.Probe(t, meta, syscall.IN_ACCESS)
	_, err = p.catalog.MetaFingerprint(reg.Payload.(RegisterPayload).ImageRef)
	require.NoError(t, err)
	_, err = DesiredMetadata(p.catalog, reg.Payload.(RegisterPayload).ImageRef, time.Now(), nil)
	require.ErrorContains(t, err, "it was not read")
	assert.False(t, read(), "the oversized metafile was read")
}
