package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// The drop folder is a trust boundary (issue 13): these tests run syncd as
// a child process, as deployed, with a folder a hostile writer filled.

func redisOf(t *testing.T, cfg *config.Config) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func inspectorOf(t *testing.T, cfg *config.Config) *asynq.Inspector {
	t.Helper()
	i := asynq.NewInspector(asynq.RedisClientOpt{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB})
	t.Cleanup(func() { _ = i.Close() })
	return i
}

// holds reports whether any file under dir contains marker.
func holds(t *testing.T, dir string, marker []byte) bool {
	t.Helper()
	found := false
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			found = bytes.Contains(b, marker)
		}
		return nil
	}))
	return found
}

// TestDropFolderLinksAndHostileNames: a link to a file outside the watch
// roots is not uploaded while a link to an image inside is; a symlinked
// metafile pointing outside fails its image's registration naming the
// rule; syncctl status names the refused link and its target; and with file
// names full of terminal escapes, control characters and invalid UTF-8,
// every line syncd logs is valid JSON.
func TestDropFolderLinksAndHostileNames(t *testing.T) {
	bin := daemontest.BuildSyncd(t)
	data := t.TempDir()
	cloud := daemontest.StartCloud(t, sandbox.Config{DataDir: data, BlockSize: smallBlocks})
	root := t.TempDir()
	dir := filepath.Join(root, "drop")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	cfgPath := filepath.Join(root, "syncd.yaml")
	daemontest.WriteConfig(t, cfg, cfgPath)

	outside := filepath.Join(root, "outside")
	secret := bytes.Repeat([]byte("<<the secret outside the drop folder>>"), 300)
	daemontest.WriteFile(t, filepath.Join(outside, "secret.bin"), secret)
	daemontest.WriteFile(t, filepath.Join(outside, "meta.json"), []byte(`{"name": "planted", "is-public": true}`))
	inside := bytes.Repeat([]byte("<<built inside>>"), 500)
	daemontest.WriteFile(t, filepath.Join(dir, "build", "out.img"), inside)
	require.NoError(t, os.Symlink("build/out.img", filepath.Join(dir, "good.diskdump")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.bin"), filepath.Join(dir, "evil.diskdump")))
	require.NoError(t, os.Symlink("/etc/hostname", filepath.Join(dir, "host.diskdump")))
	daemontest.WriteRandom(t, filepath.Join(dir, "meta.diskdump"), 3000)
	require.NoError(t, os.Symlink(filepath.Join(outside, "meta.json"), filepath.Join(dir, "meta.diskdump.meta")))
	hostile := []string{"\x1b]0;pwned\x07.diskdump", "\x1b[2J.diskdump", "tab\tnew\nline\r.diskdump", "bad\xffutf8.diskdump", `quo"te\back.diskdump`}
	for _, n := range hostile {
		daemontest.WriteRandom(t, filepath.Join(dir, n), 2000)
	}

	p := daemontest.StartSyncd(t, bin, cfgPath, filepath.Join(root, "syncd.log"))
	p.WaitRunning(t, 30*time.Second)
	daemontest.Eventually(t, 60*time.Second, "good.diskdump to be registered", func() bool {
		return daemontest.ImageByName(daemontest.Images(t, cloud), "good.diskdump") != nil
	})
	rdb := redisOf(t, cfg)
	insp := inspectorOf(t, cfg)
	var metaFail string
	daemontest.Eventually(t, 60*time.Second, "meta.diskdump's registration to be archived", func() bool {
		ti := taskFor(daemontest.Tasks(t, insp, daemontest.StateArchived), jobs.TypeRegister, "meta.diskdump")
		if ti != nil {
			metaFail = ti.LastErr
		}
		return ti != nil
	})
	requireContainsAll(t, metaFail, "follow_symlinks", filepath.Join(dir, "meta.diskdump.meta")+" -> "+filepath.Join(outside, "meta.json"))

	// syncctl status names the refused links and their targets.
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	daemontest.Eventually(t, 30*time.Second, "status to list the refused links", func() bool {
		out.Reset()
		errOut.Reset()
		code := ctl.Main(ctx, []string{"--config", cfgPath, "status"}, ctl.Options{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
		require.Equal(t, 0, code, errOut.String())
		return strings.Contains(out.String(), "evil.diskdump") && strings.Contains(out.String(), "host.diskdump")
	})
	requireContainsAll(t, out.String(), "NOT USED",
		filepath.Join(dir, "evil.diskdump")+" -> "+filepath.Join(outside, "secret.bin"),
		filepath.Join(dir, "host.diskdump")+" -> /etc/hostname", "follow_symlinks: inside")
	skipped, err := jobs.ListSkipped(ctx, rdb)
	require.NoError(t, err)
	assert.Len(t, skipped, 3, "evil, host and the metafile link: %v", skipped)

	// Nothing of the outside files reached the cloud.
	imgs := daemontest.Images(t, cloud)
	assert.Nil(t, daemontest.ImageByName(imgs, "evil.diskdump"))
	assert.Nil(t, daemontest.ImageByName(imgs, "host.diskdump"))
	assert.Nil(t, daemontest.ImageByName(imgs, "planted"))
	assert.False(t, holds(t, data, secret[:200]), "the outside file's content is in the cloud")
	assert.True(t, holds(t, data, inside[:200]), "the inside image's content is (the check works)")

	// Every log line is one valid JSON object, whatever the names.
	require.NoError(t, p.Terminate(t, 30*time.Second))
	log := p.Log(t)
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var lines int
	var decoded strings.Builder
	for sc.Scan() {
		lines++
		var m map[string]any
		require.True(t, json.Valid(sc.Bytes()), "log line %d is not valid JSON: %q", lines, sc.Bytes())
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		for _, v := range m {
			if s, ok := v.(string); ok {
				decoded.WriteString(s + "\n")
			}
		}
	}
	require.NoError(t, sc.Err())
	require.Greater(t, lines, 10)
	for _, n := range hostile[:3] {
		assert.Contains(t, decoded.String(), n, "the log names %q exactly, once decoded", n)
	}
	assert.Contains(t, decoded.String(), "bad\ufffdutf8.diskdump", "invalid UTF-8 is replaced, not passed through")
	for _, raw := range []string{"\x1b", "\x07", "\xff"} {
		assert.NotContains(t, string(log), raw, "a raw control byte reached the log file")
	}
	assert.Contains(t, decoded.String(), "symlink not used")
}

// TestAnOversizedMetafileKeepsRSSFlat: a 50 MiB metafile is refused without
// being read, and syncd's peak RSS does not grow by anything like its size.
func TestAnOversizedMetafileKeepsRSSFlat(t *testing.T) {
	const growthBound = 16 << 20
	bin := daemontest.BuildSyncd(t)
	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: smallBlocks})
	root := t.TempDir()
	dir := filepath.Join(root, "drop")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	cfgPath := filepath.Join(root, "syncd.yaml")
	daemontest.WriteConfig(t, cfg, cfgPath)
	daemontest.WriteRandom(t, filepath.Join(dir, "a.diskdump"), 40_000)
	daemontest.WriteRandom(t, filepath.Join(dir, "b.diskdump"), 40_000)

	p := daemontest.StartSyncd(t, bin, cfgPath, filepath.Join(root, "syncd.log"))
	p.WaitRunning(t, 30*time.Second)
	daemontest.Eventually(t, 60*time.Second, "both images registered", func() bool { return len(daemontest.Images(t, cloud)) == 2 })
	time.Sleep(2 * time.Duration(cfg.Rescan)) // let a rescan or two run: the baseline includes them
	before := p.VmHWM()
	require.Positive(t, before)

	// 50 MiB of a would-be metafile, staged outside and renamed in.
	big := filepath.Join(root, "big.meta")
	f, err := os.Create(big)
	require.NoError(t, err)
	w := bufio.NewWriterSize(f, 1<<20)
	_, _ = w.WriteString(`{"name": "`)
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range 50 {
		_, err := w.Write(chunk)
		require.NoError(t, err)
	}
	_, _ = w.WriteString(`"}`)
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(big, filepath.Join(dir, "a.diskdump.meta")))

	insp := inspectorOf(t, cfg)
	var msg string
	daemontest.Eventually(t, 60*time.Second, "a.diskdump's registration to be archived", func() bool {
		if ti := taskFor(daemontest.Tasks(t, insp, daemontest.StateArchived), jobs.TypeRegister, "a.diskdump"); ti != nil {
			msg = ti.LastErr
			return true
		}
		return false
	})
	requireContainsAll(t, msg, filepath.Join(dir, "a.diskdump.meta"), "52428812 bytes, more than the 1048576 a metafile may have; it was not read")
	time.Sleep(2 * time.Duration(cfg.Rescan)) // rescans see the big file too
	after := p.VmHWM()
	t.Logf("syncd peak RSS before the 50 MiB metafile %.1f MiB, after %.1f MiB", float64(before)/(1<<20), float64(after)/(1<<20))
	assert.Less(t, after-before, int64(growthBound), "syncd's peak RSS grew by %.1f MiB", float64(after-before)/(1<<20))
	require.True(t, p.Running())
}
