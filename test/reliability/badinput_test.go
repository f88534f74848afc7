package reliability

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/redistest"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// TestBadInput drops every bad input of SPEC 3.3 and 7 into one watched
// folder of one daemon, then checks for each: nothing registered, an archived
// task whose message names the file and says what is wrong and what to do,
// and a daemon that still registers a good image dropped afterwards.
func TestBadInput(t *testing.T) {
	cloud := daemontest.StartCloud(t, sandbox.Config{})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	cfg.Settle = config.Duration(time.Second)
	log, logs := observed(t)

	type badCase struct {
		rel  string // the image, relative to dir
		meta string // its metafile ("" none)
		want []string
	}
	meta := func(rel string) string { return filepath.Join(dir, rel+".meta") }
	long := func(n int) string { return strings.Repeat("k", n) }
	var manyProps strings.Builder
	manyProps.WriteString(`{"properties": {`)
	for i := range 33 {
		if i > 0 {
			manyProps.WriteString(", ")
		}
		manyProps.WriteString(`"p` + string(rune('a'+i/26)) + string(rune('a'+i%26)) + `": "v"`)
	}
	manyProps.WriteString("}}")

	cases := []badCase{
		{rel: "json/broken.diskdump", meta: "{\n  \"name\": \"broken\",\n  \"properties\": {\"A\": \"b\",}\n}\n",
			want: []string{meta("json/broken.diskdump") + ":3:27: invalid JSON: invalid character '}' looking for beginning of object key string", "fix the metafile or template named above"}},
		{rel: "disk/qcow.diskdump", meta: `{"disk-format": "qcow2"}`,
			want: []string{`unknown disk format "qcow2"; use one of: diskdump, extdump, ntfsdump`, meta("disk/qcow.diskdump")}},
		{rel: "container/vhd.diskdump", meta: `{"container-format": "vhd"}`,
			want: []string{`unknown container format "vhd"; use one of: aki, ari, ami, bare, ovf`}},
		{rel: "key/long.diskdump", meta: `{"properties": {"` + long(112) + `": "v"}}`,
			want: []string{"the property name is 112 characters; Plankton allows at most", "shorten it"}},
		{rel: "value/long.diskdump", meta: `{"properties": {"k": "` + long(257) + `"}}`,
			want: []string{"the value is 257 characters; Plankton stores at most 256: shorten it"}},
		{rel: "many/props.diskdump", meta: manyProps.String(),
			want: []string{"34 properties; Plankton stores at most 28 per image", "remove 6"}},
		{rel: "utf8/latin1.diskdump", meta: "{\"name\": \"caf\xe9\"}",
			want: []string{meta("utf8/latin1.diskdump") + ":1:14: not valid UTF-8 (byte 0xe9); save the file as UTF-8"}},
		{rel: "tmpl/placeholder.diskdump",
			want: []string{filepath.Join(dir, "tmpl", "_template.meta") + `:1:10: field "name": unknown placeholder {{.Foo}}; known:`}},
	}
	for _, c := range cases {
		if c.meta != "" {
			daemontest.WriteFile(t, meta(c.rel), []byte(c.meta))
		}
	}
	daemontest.WriteFile(t, filepath.Join(dir, "tmpl", "_template.meta"), []byte(`{"name": "{{.Foo}} image"}`))
	for _, c := range cases {
		daemontest.WriteRandom(t, filepath.Join(dir, c.rel), 10_000)
	}

	// Good images that must register: an empty one (Pithos stores a
	// zero-byte object with the hash of the empty block, and Plankton
	// registers any object: kamaki registers empty images too), and awkward
	// names.
	good := []string{
		"zero/empty.diskdump",
		"names/with space.diskdump",
		`names/quote"d 'single'.diskdump`,
		"names/hash#1.diskdump",
		"names/50%.diskdump",
		"names/what?.diskdump",
		"names/ünïcødé 映像.diskdump",
	}
	daemontest.WriteFile(t, filepath.Join(dir, good[0]), nil)
	for _, g := range good[1:] {
		daemontest.WriteRandom(t, filepath.Join(dir, g), 5_000)
	}

	// Symlink loops: a directory linking to its parent, and a file linking
	// to itself.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "loop"), 0o755))
	require.NoError(t, os.Symlink("..", filepath.Join(dir, "loop", "up")))
	require.NoError(t, os.Symlink("self.diskdump", filepath.Join(dir, "loop", "self.diskdump")))

	// An unreadable file. Root reads anything, so this case only runs as
	// another user.
	unreadable := "perm/locked.diskdump"
	checkUnreadable := os.Geteuid() != 0
	if checkUnreadable {
		daemontest.WriteRandom(t, filepath.Join(dir, unreadable), 1000)
		require.NoError(t, os.Chmod(filepath.Join(dir, unreadable), 0))
		t.Cleanup(func() { _ = os.Chmod(filepath.Join(dir, unreadable), 0o644) })
	}

	d := daemontest.Run(t, cfg, log)
	insp := d.Inspector(t)

	// A file still being written: appended to every 100ms for 2s while
	// settle is 1s. It must not be uploaded or registered until it settles,
	// and then with its whole content.
	growing := filepath.Join(dir, "growing", "big.diskdump")
	require.NoError(t, os.MkdirAll(filepath.Dir(growing), 0o755))
	f, err := os.Create(growing)
	require.NoError(t, err)
	writerDone := make(chan time.Duration)
	go func() {
		defer f.Close()
		chunk := make([]byte, 64<<10)
		var maxGap time.Duration
		last := time.Now()
		for i := range 20 {
			chunk[0] = byte(i)
			_, _ = f.Write(chunk)
			maxGap = max(maxGap, time.Since(last))
			last = time.Now()
			time.Sleep(100 * time.Millisecond)
		}
		writerDone <- maxGap
	}()
	var maxGap time.Duration
	for writing := true; writing; {
		select {
		case maxGap = <-writerDone:
			writing = false
		case <-time.After(50 * time.Millisecond):
		}
		if writing {
			require.Nil(t, daemontest.ImageByName(daemontest.Images(t, cloud), "growing/big.diskdump"), "registered while being written")
			require.Nil(t, taskFor(daemontest.AllTasks(t, insp), jobs.TypeUpload, "growing/big.diskdump"), "upload queued while being written")
		}
	}
	require.Less(t, maxGap, cfg.Settle.D(), "the writer paused longer than settle: the machine is too loaded for this check")

	// Every bad case ends archived with its message.
	archived := func(rel string) string {
		ti := taskFor(daemontest.Tasks(t, insp, daemontest.StateArchived), "", rel)
		if ti == nil {
			return ""
		}
		return ti.LastErr
	}
	for _, c := range cases {
		daemontest.Eventually(t, 30*time.Second, "an archived task for "+c.rel, func() bool { return archived(c.rel) != "" })
	}
	if checkUnreadable {
		// Never queued: the watcher opens a file before reporting it, and
		// logs what to do at each rescan (see TestUnreadableFileAsOtherUser).
		abs := filepath.Join(dir, unreadable)
		daemontest.Eventually(t, 30*time.Second, "a log line about "+unreadable, func() bool {
			for _, e := range logs.FilterMessage("cannot read under a watch root").All() {
				if e.ContextMap()["path"] == abs {
					requireContainsAll(t, e.ContextMap()["error"].(string), "cannot read (fix its permissions; it is retried at each rescan)", "permission denied")
					return true
				}
			}
			return false
		})
		require.Nil(t, taskFor(daemontest.AllTasks(t, insp), "", unreadable))
	} else {
		t.Log("running as root, which can read a chmod 000 file: the unreadable-file case is covered by TestUnreadableFileAsOtherUser")
	}
	for _, c := range cases {
		msg := archived(c.rel)
		t.Logf("%s: %s", c.rel, msg)
		requireContainsAll(t, msg, append([]string{"register " + c.rel}, c.want...)...)
	}

	// Good ones register, with the checksum of their content.
	good = append(good, "growing/big.diskdump")
	daemontest.Eventually(t, 60*time.Second, "the good images to register", func() bool {
		imgs := daemontest.Images(t, cloud)
		for _, g := range good {
			if daemontest.ImageByName(imgs, g) == nil {
				return false
			}
		}
		return true
	})
	imgs := daemontest.Images(t, cloud)
	for _, g := range good {
		im := daemontest.ImageByName(imgs, g)
		require.Equal(t, daemontest.FileHash(t, filepath.Join(dir, g), 0), im.Checksum, g)
		require.Equal(t, "linux", im.Properties["osfamily"], g)
	}
	require.Equal(t, int64(0), daemontest.ImageByName(imgs, "zero/empty.diskdump").Size)
	require.Equal(t, int64(20*64<<10), daemontest.ImageByName(imgs, "growing/big.diskdump").Size)

	// Nothing else registered: no bad case, no symlink.
	require.Len(t, imgs, len(good), "registered: %v", imgs)
	require.Empty(t, daemontest.HalfRegistered(t, cloud))

	// The self-referencing symlink is reported in the log, by path.
	daemontest.Eventually(t, 10*time.Second, "a log line about loop/self.diskdump", func() bool {
		for _, e := range logs.FilterMessage("cannot read under a watch root").All() {
			if e.ContextMap()["path"] == filepath.Join(dir, "loop", "self.diskdump") {
				return true
			}
		}
		return false
	})
	e := logs.FilterMessage("cannot read under a watch root").All()
	for _, en := range e {
		if en.ContextMap()["path"] == filepath.Join(dir, "loop", "self.diskdump") {
			t.Logf("symlink loop: %s %v", en.Message, en.ContextMap())
			requireContainsAll(t, en.ContextMap()["error"].(string), "broken symlink", "too many levels of symbolic links")
			break
		}
	}

	// The directory symlinked to its parent is not followed (so the loop
	// costs nothing), and the log says so.
	require.NotEmpty(t, logs.FilterMessage("not following symlinked directory").FilterField(zap.String("path", "loop/up")).All())

	// The daemon keeps running: a good image dropped now completes, and a
	// fixed metafile is picked up without anything else to do.
	require.True(t, d.Running())
	daemontest.WriteRandom(t, filepath.Join(dir, "after", "ok.diskdump"), 3000)
	daemontest.WriteFile(t, meta("disk/qcow.diskdump"), []byte(`{"disk-format": "diskdump"}`))
	daemontest.Eventually(t, 60*time.Second, "after/ok and the fixed disk/qcow to register", func() bool {
		imgs := daemontest.Images(t, cloud)
		return daemontest.ImageByName(imgs, "after/ok.diskdump") != nil && daemontest.ImageByName(imgs, "disk/qcow.diskdump") != nil
	})
	require.True(t, d.Running())
	require.Empty(t, daemontest.HalfRegistered(t, cloud))
}

// TestUnreadableFileAsOtherUser covers the unreadable-file case when the
// suite runs as root (which reads a chmod 000 file): syncd runs as a child
// process under the unprivileged user nobody (65534), so chmod 000 really
// denies it. It is never queued; the log names the path, the error and what to
// do; after chmod 644 the next rescan registers the image. When the
// suite does not run as root, TestBadInput covers it in-process instead.
func TestUnreadableFileAsOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: TestBadInput checks the chmod 000 file in-process")
	}
	const nobody = 65534
	bin := daemontest.BuildSyncd(t)
	cloud := daemontest.StartCloud(t, sandbox.Config{})
	root, err := os.MkdirTemp("", "unreadable-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	require.NoError(t, os.Chmod(root, 0o755))
	dir := filepath.Join(root, "images")
	port := redistest.FreePort(t)
	rc := config.Redis{Addr: config.EmbeddedRedis, EmbeddedListen: fmt.Sprintf("127.0.0.1:%d", port)}
	cfg := daemontest.Config(t, cloud, rc, dir)
	cfg.StateDir = filepath.Join(root, "state")
	require.NoError(t, os.MkdirAll(cfg.StateDir, 0o700))
	require.NoError(t, os.Chown(cfg.StateDir, nobody, nobody))
	cfgPath := filepath.Join(root, "syncd.yaml")
	daemontest.WriteConfig(t, cfg, cfgPath)
	require.NoError(t, os.Chown(cfgPath, nobody, nobody))

	const locked, fine = "perm/locked.diskdump", "perm/fine.diskdump"
	daemontest.WriteRandom(t, filepath.Join(dir, fine), 1000)
	daemontest.WriteRandom(t, filepath.Join(dir, locked), 1000)
	require.NoError(t, os.Chmod(filepath.Join(dir, locked), 0))

	p := daemontest.StartSyncdAs(t, bin, cfgPath, filepath.Join(root, "syncd.log"), nobody, nobody)
	p.WaitRunning(t, 30*time.Second)
	rdb := redis.NewClient(&redis.Options{Addr: rc.EmbeddedListen})
	t.Cleanup(func() { _ = rdb.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)

	requireAllRegistered(t, cloud, dir, 0, 60*time.Second, fine)
	// The watcher opens a file before reporting it: an unreadable one is
	// never queued, and is reported in the log (and the watch-errors metric)
	// at each rescan until it can be read.
	abs := filepath.Join(dir, locked)
	var msg string
	daemontest.Eventually(t, 30*time.Second, "a log line about the unreadable file", func() bool {
		for _, line := range bytes.Split(p.Log(t), []byte("\n")) {
			if bytes.Contains(line, []byte(`"cannot read under a watch root"`)) && bytes.Contains(line, []byte(abs)) {
				msg = string(line)
				return true
			}
		}
		return false
	})
	t.Logf("unreadable file: %s", msg)
	requireContainsAll(t, msg, `"level":"warn"`, `"path":"`+abs+`"`, "cannot read (fix its permissions; it is retried at each rescan): open "+abs+": permission denied")
	require.Nil(t, taskFor(daemontest.AllTasks(t, insp), "", locked), "an unreadable file was queued")
	require.Nil(t, daemontest.ImageByName(daemontest.Images(t, cloud), locked))
	require.True(t, p.Running())

	// Do what the message says: nothing else is needed.
	require.NoError(t, os.Chmod(abs, 0o644))
	requireAllRegistered(t, cloud, dir, 0, 60*time.Second, fine, locked)
	require.NoError(t, p.Terminate(t, 30*time.Second))
}
