package ctl

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/inspect/inspecttest"
	"github.com/imagesync/imagesync/internal/jobs"
)

func TestInspectArgumentIsATaskOrAFile(t *testing.T) {
	t.Chdir(t.TempDir())
	writeFile(t, "plainfile", "x")
	require.NoError(t, os.Mkdir("adir", 0o755))
	for arg, file := range map[string]bool{
		"upload:3f2a9c1e0b7d":    false,
		"register:9c1e0b7d3f2a":  false,
		"republish:manual-2026":  false,
		"adir":                   false, // a directory is no image
		"plainfile":              true,  // an existing file
		"./anything":             true,  // a path
		"images/debian.diskdump": true,
		"missing.DISKDUMP":       true, // an image extension, even if missing
		"disk.img":               true,
		"disk.raw":               true,
	} {
		assert.Equal(t, file, isImageArg(arg), arg)
	}
}

func debianImage(t *testing.T, path string) {
	t.Helper()
	root := inspecttest.DebianRoot(t, filepath.Join(t.TempDir(), "root"))
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	inspecttest.MBRExt(t, path, 16*inspecttest.MiB, "ext4", root)
}

// TestInspectFile: `syncctl inspect FILE` needs no configuration, Redis or
// cloud, and shows what was detected with its evidence.
func TestInspectFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // no configs/syncd.yaml, no ./state: syncctl must not need them
	disk := filepath.Join(dir, "debian.diskdump")
	debianImage(t, disk)

	code, out, errOut := runCtl(t, "inspect", "debian.diskdump")
	require.Equal(t, 0, code, errOut)
	for _, s := range []string{
		"partition table  msdos: MBR signature 0x55AA at byte 510",
		"0x83 Linux (boot)", "ext4 superblock (magic 0xEF53 at byte 1080",
		"OSFAMILY", "linux", "partition 1 ext4: a Linux root (/etc holds fstab, os-release, passwd)",
		"DESCRIPTION", "Debian GNU/Linux 12 (bookworm)", "partition 1 ext4 /etc/os-release (→ /usr/lib/os-release) (PRETTY_NAME)",
		"USERS", "root alice bob", "KERNEL", "6.1.0-18-amd64",
		"snf-image: deployable as detected",
	} {
		assert.Contains(t, out, s)
	}

	var doc InspectFileDoc
	code, out, errOut = runCtl(t, "inspect", disk, "--json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	assert.Equal(t, disk, doc.File)
	assert.True(t, doc.Deployable)
	assert.Empty(t, doc.Problems)
	assert.Equal(t, "msdos", doc.PartitionTable)
	assert.Equal(t, map[string]string{
		"OSFAMILY": "linux", "ROOT_PARTITION": "1", "PARTITION_TABLE": "msdos", "OS": "debian",
		"DESCRIPTION": inspecttest.DebianPrettyName, "KERNEL": inspecttest.DebianKernel, "USERS": inspecttest.DebianUsers,
	}, doc.Properties)
	assert.Equal(t, "partition 1 ext4 /etc/passwd (accounts with a login shell: root, and UIDs from 1000, UID_MIN in /etc/login.defs)", doc.Evidence["USERS"])
	require.Len(t, doc.Partitions, 1)
	assert.Equal(t, "ext4", doc.Partitions[0].Filesystem)

	// A disk with nothing to detect: not deployable as detected.
	blank := filepath.Join(dir, "blank.img")
	require.NoError(t, os.WriteFile(blank, make([]byte, 1<<20), 0o644))
	code, out, errOut = runCtl(t, "inspect", blank, "--json")
	require.Equal(t, 0, code, errOut)
	doc = InspectFileDoc{}
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	assert.False(t, doc.Deployable)
	require.Len(t, doc.Problems, 1)
	assert.Contains(t, doc.Problems[0].Message, "snf-image needs OSFAMILY and ROOT_PARTITION")
	code, out, _ = runCtl(t, "inspect", blank)
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "Nothing detected.")
	assert.Contains(t, out, "snf-image: not deployable as detected")

	code, _, errOut = runCtl(t, "inspect", "missing.diskdump")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "inspect missing.diskdump:")
	assert.Contains(t, errOut, "no such file or directory")
}

// TestInspectIDStillFindsTasks: an argument that is no file is a task id.
func TestInspectIDStillFindsTasks(t *testing.T) {
	e := newEnv(t, "miniredis")
	code, _, errOut := e.run("inspect", "upload:0123456789abcdef")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `no task "upload:0123456789abcdef"`)
}

// TestPlanExplainsMetadata: plan computes each image's metadata as its
// registration would, detection included, and says where every value comes
// from and what is not deployable.
func TestPlanExplainsMetadata(t *testing.T) {
	e := newEnv(t, "miniredis")
	debianImage(t, filepath.Join(e.root, "linux", "debian.diskdump"))
	writeFile(t, filepath.Join(e.root, "linux", "_template.meta"), `{"properties": {"OS": "debian-cloud"}}`)
	writeFile(t, filepath.Join(e.root, "linux", "debian.diskdump.meta"), `{"properties": {"USERS": "root"}}`)
	require.NoError(t, os.WriteFile(filepath.Join(e.root, "blank.diskdump"), make([]byte, 64<<10), 0o644))

	var doc PlanDoc
	e.runJSON(&doc, "plan")
	require.Len(t, doc.Images, 2)
	var deb, blank PlanImage
	for _, im := range doc.Images {
		switch im.RelPath {
		case "linux/debian.diskdump":
			deb = im
		case "blank.diskdump":
			blank = im
		}
	}
	src := map[string]string{}
	val := map[string]string{}
	for _, f := range deb.Metadata {
		src[f.Field], val[f.Field] = f.Source, f.Value
	}
	assert.Equal(t, "built-in default", src["name"])
	assert.Equal(t, "linux", val["properties.osfamily"])
	assert.Equal(t, "detected from partition 1 ext4: a Linux root (/etc holds fstab, os-release, passwd)", src["properties.osfamily"])
	assert.Equal(t, "detected from partition 1 ext4: the Linux root filesystem", src["properties.root_partition"])
	assert.Equal(t, "detected from partition 1 ext4 /etc/os-release (→ /usr/lib/os-release) (PRETTY_NAME)", src["properties.description"])
	assert.Equal(t, "debian-cloud", val["properties.os"])
	assert.Equal(t, filepath.Join(e.root, "linux", "_template.meta"), src["properties.os"])
	assert.Equal(t, "root", val["properties.users"])
	assert.Equal(t, filepath.Join(e.root, "linux", "debian.diskdump.meta"), src["properties.users"])
	assert.Empty(t, deb.Warnings)
	assert.Empty(t, deb.Errors)
	require.Len(t, blank.Warnings, 1)
	assert.Contains(t, blank.Warnings[0], filepath.Join(e.root, "blank.diskdump")+": not deployable as is")
	assert.Empty(t, blank.Errors)

	code, out, errOut := e.run("plan", "--explain")
	require.Equal(t, 0, code, errOut)
	for _, s := range []string{
		"PROBLEMS", "/images/blank.diskdump: warning: ", "snf-image needs OSFAMILY and ROOT_PARTITION",
		"/images/linux/debian.diskdump  (linux/debian.diskdump)",
		"property osfamily", "detected from partition 1 ext4: a Linux root",
		"property kernel", "detected from partition 1 ext4 /boot/vmlinuz-6.1.0-18-amd64",
	} {
		assert.Contains(t, out, s)
	}
	code, out, _ = e.run("plan")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "PROBLEMS", "warnings show without --explain")
	assert.NotContains(t, out, "property osfamily", "the metadata only with --explain")

	// Under require_deployable, and with a ROOT_PARTITION the disk lacks,
	// both are refusals.
	e.extra = "    require_deployable: true\n"
	e.writeConfig()
	writeFile(t, filepath.Join(e.root, "linux", "debian.diskdump.meta"), `{"properties": {"ROOT_PARTITION": "3"}}`)
	doc = PlanDoc{}
	e.runJSON(&doc, "plan")
	for _, im := range doc.Images {
		require.Len(t, im.Errors, 1, im.RelPath)
		assert.Empty(t, im.Warnings)
		switch im.RelPath {
		case "blank.diskdump":
			assert.Contains(t, im.Errors[0], "(refused: the watch entry sets require_deployable)")
		default:
			assert.Contains(t, im.Errors[0], "ROOT_PARTITION=3 names no partition: the msdos table has partition 1 (ext4)")
		}
	}
	code, out, _ = e.run("plan")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "/images/linux/debian.diskdump: would be refused: ")
}

func TestStatusShowsImagesRegisteredWithDeployWarnings(t *testing.T) {
	e := newEnv(t, "miniredis")
	var doc StatusDoc
	e.runJSON(&doc, "status")
	assert.Equal(t, []jobs.DeployWarning{}, doc.DeployWarnings)

	w := jobs.DeployWarning{Location: "/images/blank.diskdump", Path: "/srv/images/blank.diskdump", Task: "register:1",
		Warnings: []string{"/srv/images/blank.diskdump: not deployable as is: snf-image needs OSFAMILY and ROOT_PARTITION"},
		At:       time.Now().UTC().Truncate(time.Second)}
	b, err := json.Marshal(w)
	require.NoError(t, err)
	require.NoError(t, e.rdb.HSet(context.Background(), jobs.DeployWarningsKey, w.Location, b).Err())
	e.runJSON(&doc, "status")
	require.Len(t, doc.DeployWarnings, 1)
	assert.Equal(t, w.Location, doc.DeployWarnings[0].Location)
	assert.Equal(t, w.Warnings, doc.DeployWarnings[0].Warnings)
	code, out, _ := e.run("status")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "NOT DEPLOYABLE AS REGISTERED (1 image(s)")
	assert.Contains(t, out, "/images/blank.diskdump")
	assert.Contains(t, out, "snf-image needs OSFAMILY and ROOT_PARTITION")
}
