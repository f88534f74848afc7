package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/inspect/inspecttest"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// An image dropped with no metafile is registered with what its disk says:
// a Debian 12 disk (MBR, ext4 root) gets OSFAMILY, ROOT_PARTITION, OS, a
// DESCRIPTION from /etc/os-release and USERS from /etc/passwd. A disk with
// nothing to detect is registered with a warning that syncctl status shows,
// or refused where the watch entry requires deployable images.
func TestE2EImageWithoutMetafileIsRegisteredWithWhatItsDiskSays(t *testing.T) {
	inspecttest.RequireTools(t, "sfdisk", "mke2fs")
	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: 64 << 10})
	base := t.TempDir()
	drop, strict := filepath.Join(base, "drop"), filepath.Join(base, "strict")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), drop)
	// The test configs default OSFAMILY to linux: here it must come from
	// the disk.
	cfg.Watch[0].Defaults = nil
	require.NoError(t, os.MkdirAll(strict, 0o755))
	cfg.Watch = append(cfg.Watch, config.Watch{Dir: strict, Container: "strict", RequireDeployable: true})
	require.NoError(t, cfg.Validate())
	cfgPath := filepath.Join(base, "syncd.yaml")
	daemontest.WriteConfig(t, cfg, cfgPath)
	d := daemontest.Run(t, cfg, nil)

	// Built aside and moved in, as a build pipeline would.
	build := filepath.Join(base, "build.diskdump")
	root := inspecttest.DebianRoot(t, filepath.Join(base, "root"))
	inspecttest.MBRExt(t, build, 24*inspecttest.MiB, "ext4", root)
	require.NoError(t, os.Rename(build, filepath.Join(drop, "debian-12.diskdump")))
	daemontest.WriteFile(t, filepath.Join(drop, "blank.diskdump"), make([]byte, 256<<10))
	daemontest.WriteFile(t, filepath.Join(strict, "blank.diskdump"), make([]byte, 256<<10))

	var deb, blank *daemontest.Image
	daemontest.Eventually(t, 90*time.Second, "both images of drop/ registered", func() bool {
		imgs := daemontest.Images(t, cloud)
		deb, blank = daemontest.ImageByName(imgs, "debian-12.diskdump"), daemontest.ImageByName(imgs, "blank.diskdump")
		return deb != nil && blank != nil
	})
	assert.Equal(t, map[string]string{
		"osfamily": "linux", "root_partition": "1", "partition_table": "msdos",
		"os": "debian", "description": "Debian GNU/Linux 12 (bookworm)",
		"kernel": "6.1.0-18-amd64", "users": "root alice bob",
	}, deb.Properties)
	assert.Empty(t, blank.Properties)

	insp := d.Inspector(t)
	var refused *asynq.TaskInfo
	daemontest.Eventually(t, 60*time.Second, "the strict root's blank image refused", func() bool {
		for _, ti := range daemontest.Tasks(t, insp, "archived") {
			if ti.Type == jobs.TypeRegister && strings.Contains(ti.LastErr, filepath.Join(strict, "blank.diskdump")) {
				refused = ti
				return true
			}
		}
		return false
	})
	assert.Contains(t, refused.LastErr, "not deployable as is: snf-image needs OSFAMILY and ROOT_PARTITION")
	assert.Contains(t, refused.LastErr, "refused: the watch entry sets require_deployable")
	assert.Contains(t, refused.LastErr, filepath.Join(strict, "blank.diskdump.meta"), "names where to fix it")
	for _, img := range daemontest.Images(t, cloud) {
		assert.NotContains(t, img.Location, "/strict/", "nothing of the strict root is registered")
	}

	// syncctl status shows the image registered with a warning; plan
	// --explain says where the Debian image's values came from.
	var status ctl.StatusDoc
	runSyncctl(t, cfgPath, &status, "status")
	require.Len(t, status.DeployWarnings, 1)
	assert.Equal(t, "/images/blank.diskdump", status.DeployWarnings[0].Location)
	assert.Contains(t, status.DeployWarnings[0].Warnings[0], "snf-image needs OSFAMILY and ROOT_PARTITION")
	var plan ctl.PlanDoc
	runSyncctl(t, cfgPath, &plan, "plan")
	sources := map[string]string{}
	for _, im := range plan.Images {
		if im.RelPath == "debian-12.diskdump" {
			for _, f := range im.Metadata {
				sources[f.Field] = f.Source
			}
		}
	}
	assert.Equal(t, "detected from partition 1 ext4 /etc/os-release (→ /usr/lib/os-release) (ID)", sources["properties.os"])
	assert.Equal(t, "detected from partition 1 ext4 /etc/passwd (accounts with a login shell: root, and UIDs from 1000, UID_MIN in /etc/login.defs)", sources["properties.users"])
}

func runSyncctl(t *testing.T, cfgPath string, v any, args ...string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := ctl.Main(ctx, append([]string{"--config", cfgPath, "--json"}, args...), ctl.Options{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	require.Equal(t, 0, code, "syncctl %v: %s", args, errOut.String())
	require.NoError(t, json.Unmarshal(out.Bytes(), v), out.String())
}
