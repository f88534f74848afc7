package jobs

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/inspect/inspecttest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/watch"
)

// debianImage builds a Debian 12 MBR + ext4 disk at rel under the pipeline's
// root and returns its facts.
func (p *pipeline) debianImage(rel string) FileFacts {
	p.t.Helper()
	abs := filepath.Join(p.root, filepath.FromSlash(rel))
	require.NoError(p.t, os.MkdirAll(filepath.Dir(abs), 0o755))
	root := inspecttest.DebianRoot(p.t, filepath.Join(p.t.TempDir(), "root"))
	inspecttest.MBRExt(p.t, abs, 12*inspecttest.MiB, "ext4", root)
	f, err := StatImage(p.catalog.Roots(), abs)
	require.NoError(p.t, err)
	return f
}

// uploadAndRegister runs the upload and returns its registration's task.
func (p *pipeline) uploadAndRegister(f FileFacts) (queue, id string) {
	p.t.Helper()
	up, err := p.catalog.UploadRequest(f, false)
	p.enqueue(up, err)
	p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
	reg, err := p.catalog.RegisterRequest(f, hashOf(p, f.RelPath), "", "upload", false)
	require.NoError(p.t, err)
	return reg.Queue, reg.ID
}

func TestRegistrationUsesWhatIsDetectedInTheDisk(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	f := p.debianImage("debian-12.diskdump")
	p.write("debian-12.diskdump.meta", []byte(`{"properties": {"USERS": "root"}}`))
	queue, id := p.uploadAndRegister(f)
	info := p.wait(queue, id, asynq.TaskStateCompleted)
	prog, _ := DecodeProgress(info.Result)
	assert.Empty(t, prog.Warnings)
	img := p.image("debian-12.diskdump")
	require.NotNil(t, img)
	assert.Equal(t, map[string]string{
		"osfamily": "linux", "root_partition": "1", "partition_table": "msdos", "os": "debian",
		"description": inspecttest.DebianPrettyName, "kernel": inspecttest.DebianKernel,
		"users": "root", // the metafile wins over /etc/passwd
	}, img.Properties)
	n, err := p.rdb.HLen(p.ctx, DeployWarningsKey).Result()
	require.NoError(t, err)
	assert.Zero(t, n)

	// The sweep computes the same desired metadata: the image is in sync,
	// not drifted, and stays as detected.
	rep, err := Sweep(p.ctx, SweepDeps{Catalog: p.catalog, Session: p.session}, SweepOptions{DryRun: true})
	require.NoError(t, err)
	require.Len(t, rep.Images, 1)
	assert.Equal(t, SweepInSync, rep.Images[0].State, "%+v", rep.Images[0])
}

func TestDeployability(t *testing.T) {
	zeros := func(p *pipeline, rel string) FileFacts { return p.write(rel, make([]byte, 64<<10)) }
	cases := []struct {
		name     string
		watch    config.Watch
		meta     string // the image's metafile, "" for none
		debian   bool   // a real Debian disk, else zeros
		archived []string
		warnings []string
		props    map[string]string // of the registered image, when registered
	}{
		{
			name: "undetectable: registered with a warning", debian: false,
			warnings: []string{"not deployable as is: snf-image needs OSFAMILY and ROOT_PARTITION, which are not set and were not detected",
				"to fix: set OSFAMILY and ROOT_PARTITION", "img.diskdump.meta (or a _template.meta above it, or the watch entry's defaults)"},
			props: map[string]string{},
		},
		{
			name: "undetectable under require_deployable: refused", watch: config.Watch{RequireDeployable: true},
			archived: []string{"img.diskdump: not deployable as is", "refused: the watch entry sets require_deployable",
				"set the values named above"},
		},
		{
			name: "undetectable but set by hand: registered", watch: config.Watch{RequireDeployable: true},
			meta:  `{"properties": {"OSFAMILY": "linux", "ROOT_PARTITION": "1"}}`,
			props: map[string]string{"osfamily": "linux", "root_partition": "1"},
		},
		{
			name: "a ROOT_PARTITION the disk does not have", debian: true,
			meta: `{"properties": {"ROOT_PARTITION": "2"}}`,
			archived: []string{"img.diskdump: ROOT_PARTITION=2 names no partition: the msdos table has partition 1 (ext4)",
				"[ROOT_PARTITION set in", "img.diskdump.meta]", "to fix: set ROOT_PARTITION to the partition that holds the root filesystem (detected: 1)"},
		},
		{
			name: "an OSFAMILY the root filesystem contradicts", debian: true,
			watch: config.Watch{Defaults: map[string]any{"properties": map[string]any{"OSFAMILY": "windows"}}},
			archived: []string{"OSFAMILY=windows, but ROOT_PARTITION=1 holds ext4",
				"[OSFAMILY set in config watch entry", "set OSFAMILY to linux (detected: partition 1 ext4: a Linux root"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(t, sandbox.Config{}, "", tc.watch)
			var f FileFacts
			if tc.debian {
				f = p.debianImage("img.diskdump")
			} else {
				f = zeros(p, "img.diskdump")
			}
			if tc.meta != "" {
				p.write("img.diskdump.meta", []byte(tc.meta))
			}
			queue, id := p.uploadAndRegister(f)
			if tc.archived != nil {
				info := p.wait(queue, id, asynq.TaskStateArchived)
				for _, w := range tc.archived {
					assert.Contains(t, info.LastErr, w)
				}
				assert.Nil(t, p.image("img.diskdump"), "nothing is registered")
				return
			}
			info := p.wait(queue, id, asynq.TaskStateCompleted)
			img := p.image("img.diskdump")
			require.NotNil(t, img)
			assert.Equal(t, tc.props, img.Properties)
			prog, _ := DecodeProgress(info.Result)
			got, err := ReadDeployWarnings(p.ctx, p.rdb)
			require.NoError(t, err)
			if tc.warnings == nil {
				assert.Empty(t, prog.Warnings)
				assert.Empty(t, got)
				return
			}
			require.Len(t, prog.Warnings, 1)
			require.Len(t, got, 1)
			assert.Equal(t, "/images/img.diskdump", got[0].Location)
			assert.Equal(t, f.AbsPath, got[0].Path)
			assert.Equal(t, id, got[0].Task)
			for _, w := range tc.warnings {
				assert.Contains(t, prog.Warnings[0], w)
				assert.Contains(t, got[0].Warnings[0], w)
			}

			// Setting the values clears the warning at the next registration.
			p.write("img.diskdump.meta", []byte(`{"properties": {"OSFAMILY": "linux", "ROOT_PARTITION": "1"}}`))
			reg, err := p.catalog.RegisterRequest(f, "", "", "metafile", false)
			p.enqueue(reg, err)
			p.wait(reg.Queue, reg.ID, asynq.TaskStateCompleted)
			got, err = ReadDeployWarnings(p.ctx, p.rdb)
			require.NoError(t, err)
			assert.Empty(t, got)
		})
	}
}

// A registration queued for content the file no longer has registers
// nothing: the new content's upload registers it, with its own detection.
func TestRegistrationOfAChangedFileIsSuperseded(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	f := p.write("a.diskdump", make([]byte, 8192))
	queue, id := p.uploadAndRegister(f)
	p.wait(queue, id, asynq.TaskStateCompleted)
	require.NotNil(t, p.image("a.diskdump"))

	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(f.AbsPath, later, later))
	p.write("a.diskdump.meta", []byte(`{"name": "renamed"}`))
	reg, err := p.catalog.RegisterRequest(f, "", "", "metafile", false) // with the old facts
	p.enqueue(reg, err)
	info := p.wait(reg.Queue, reg.ID, asynq.TaskStateCompleted)
	prog, _ := DecodeProgress(info.Result)
	assert.Contains(t, prog.Note, "superseded: the file changed")
	assert.Nil(t, p.image("renamed"))

	require.NoError(t, os.Remove(f.AbsPath))
	f.ModTime = later
	reg, err = p.catalog.RegisterRequest(f, "", "", "metafile", false)
	p.enqueue(reg, err)
	info = p.wait(reg.Queue, reg.ID, asynq.TaskStateCompleted)
	prog, _ = DecodeProgress(info.Result)
	assert.Contains(t, prog.Note, "the image file is gone")
}

// Inspection reads the image as its upload does, through the root's
// rules: a symlink out of the root (follow_symlinks: inside, the default)
// is not read.
func TestInspectionReadsThroughTheRootsRules(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	outside := filepath.Join(t.TempDir(), "elsewhere.img")
	require.NoError(t, os.WriteFile(outside, make([]byte, 4096), 0o644))
	link := filepath.Join(p.root, "x.diskdump")
	require.NoError(t, os.Symlink(outside, link))
	fi, err := os.Stat(link)
	require.NoError(t, err)
	id := watch.IDOf(fi)
	facts := FileFacts{Root: p.root, RelPath: "x.diskdump", Size: fi.Size(), ModTime: fi.ModTime(), Dev: id.Dev, Inode: id.Ino}
	_, err = p.catalog.InspectImage(p.ctx, noCacheDetector(), facts)
	var pe *PolicyError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "follow_symlinks", pe.Rule)

	f := p.write("in.diskdump", make([]byte, 4096))
	rep, err := p.catalog.InspectImage(p.ctx, noCacheDetector(), f)
	require.NoError(t, err)
	assert.Empty(t, rep.Properties)
	f.Size++
	_, err = p.catalog.InspectImage(p.ctx, noCacheDetector(), f)
	assert.ErrorIs(t, err, errImageChanged)
	require.NoError(t, os.Remove(f.AbsPath))
	_, err = p.catalog.InspectImage(p.ctx, noCacheDetector(), f)
	assert.ErrorIs(t, err, errImageGone)
}
