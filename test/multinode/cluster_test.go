// Package multinode runs several syncd nodes on one Redis, as an
// installation with many image-build hosts does (issue 11): each node a child
// syncd process in a private mount namespace, so that every node watches the
// same path and sees its own files there, as separate hosts would. The tests
// assert that every job that reads a node's files runs on that node, that
// a node down delays only its own images, and that a schedule sweeps once
// per tick however many daemons run it.
//
// Every test starts its own redis-server (internal/redistest) and sandbox
// cloud; none touches a Redis it did not start.
package multinode

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/redistest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// blockSize keeps multi-block images small.
const blockSize = 64 << 10

// cluster is several syncd nodes on one Redis and one sandbox cloud. Every
// node watches the same private path (mount), where it sees its own
// directory (node.src), and one shared root that all nodes read.
type cluster struct {
	t      testing.TB
	bin    string
	cloud  *sandboxtest.Cloud
	redis  *redistest.Server
	mount  string // the path every node watches, with different content on each
	shared string // the shared: true root
	nodes  map[string]*node
	order  []string
}

type node struct {
	name    string
	src     string // what this node sees at cluster.mount
	cfg     *config.Config
	cfgPath string
	logPath string
	proc    *daemontest.Proc
}

func newCluster(t testing.TB, cloud *sandboxtest.Cloud, names ...string) *cluster {
	t.Helper()
	base := t.TempDir()
	c := &cluster{
		t: t, bin: daemontest.BuildSyncd(t), cloud: cloud, redis: redistest.StartProcess(t),
		mount: filepath.Join(base, "images"), shared: filepath.Join(base, "shared"), nodes: map[string]*node{},
	}
	require.NoError(t, os.MkdirAll(c.shared, 0o755))
	for _, name := range names {
		n := &node{name: name, src: filepath.Join(base, "node-"+name)}
		require.NoError(t, os.MkdirAll(n.src, 0o755))
		cfg := daemontest.Config(t, cloud, config.Redis{Addr: c.redis.Addr}, c.mount)
		cfg.Node = name
		cfg.Upload.Files, cfg.Upload.Blocks = 2, 4
		cfg.Watch = append(cfg.Watch, config.Watch{Dir: c.shared, Container: "images", Prefix: "shared", Shared: true})
		require.NoError(t, cfg.Validate())
		n.cfg = cfg
		n.cfgPath = filepath.Join(base, "syncd-"+name+".yaml")
		n.logPath = filepath.Join(base, "syncd-"+name+".log")
		daemontest.WriteConfig(t, cfg, n.cfgPath)
		c.nodes[name] = n
		c.order = append(c.order, name)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, name := range c.order {
			b, _ := os.ReadFile(c.nodes[name].logPath)
			// The whole log outlives the test's temporary directory.
			kept := filepath.Join(os.TempDir(), fmt.Sprintf("multinode-%s-%s.log", strings.ReplaceAll(t.Name(), "/", "_"), name))
			_ = os.WriteFile(kept, b, 0o600)
			t.Logf("syncd %s log (last 6 KiB; all of it in %s):\n%s", name, kept, b[max(0, len(b)-6144):])
		}
	})
	return c
}

// start runs node name's syncd with its own files at c.mount.
func (c *cluster) start(name string) *daemontest.Proc {
	c.t.Helper()
	n := c.nodes[name]
	n.proc = daemontest.StartSyncdInNamespace(c.t, c.bin, n.cfgPath, n.logPath, daemontest.Bind{Source: n.src, Target: c.mount})
	return n.proc
}

func (c *cluster) startAll() {
	c.t.Helper()
	for _, name := range c.order {
		c.start(name)
	}
	for _, name := range c.order {
		c.nodes[name].proc.WaitRunning(c.t, 60*time.Second)
	}
}

// fillNode gives node name count images of size bytes with a template and
// per-image metafiles that exist only on that node.
func (c *cluster) fillNode(name string, count, size int) {
	c.t.Helper()
	n := c.nodes[name]
	daemontest.WriteFile(c.t, filepath.Join(n.src, "_template.meta"),
		[]byte(fmt.Sprintf(`{"properties": {"BUILT_ON": %q, "OSFAMILY": "linux"}}`, name)))
	for i := range count {
		img := fmt.Sprintf("%s-%02d.diskdump", name, i)
		daemontest.WriteFile(c.t, filepath.Join(n.src, img+".meta"),
			[]byte(fmt.Sprintf(`{"name": %q, "properties": {"IMAGE_NODE": %q}}`, nodeImageName(name, i), name)))
		daemontest.WriteRandom(c.t, filepath.Join(n.src, img), size)
	}
}

func nodeImageName(node string, i int) string { return fmt.Sprintf("node %s image %02d", node, i) }

// fillShared puts count images into the shared root.
func (c *cluster) fillShared(count, size int) {
	c.t.Helper()
	daemontest.WriteFile(c.t, filepath.Join(c.shared, "_template.meta"), []byte(`{"properties": {"BUILT_ON": "shared-storage"}}`))
	for i := range count {
		daemontest.WriteRandom(c.t, filepath.Join(c.shared, fmt.Sprintf("s-%02d.diskdump", i)), size)
	}
}

// expected is what every image must be registered as: name → built_on.
func (c *cluster) expected(perNode, shared int) map[string]string {
	want := map[string]string{}
	for _, name := range c.order {
		for i := range perNode {
			want[nodeImageName(name, i)] = name
		}
	}
	for i := range shared {
		want[fmt.Sprintf("s-%02d.diskdump", i)] = "shared-storage"
	}
	return want
}

// checkMetadata compares the registered images with want: each one exactly
// once, with the metadata of the node that has its files. It returns what
// is wrong, "" when nothing is.
func checkMetadata(imgs []daemontest.Image, want map[string]string) string {
	var bad []string
	seen := map[string]int{}
	for _, im := range imgs {
		seen[im.Name]++
		builtOn, ok := want[im.Name]
		if !ok {
			bad = append(bad, fmt.Sprintf("unexpected image %q (%s) built_on=%q image_node=%q", im.Name, im.Location, im.Properties["built_on"], im.Properties["image_node"]))
			continue
		}
		if im.Properties["built_on"] != builtOn {
			bad = append(bad, fmt.Sprintf("%q has built_on=%q, want %q (another node's template)", im.Name, im.Properties["built_on"], builtOn))
		}
		if builtOn != "shared-storage" && im.Properties["image_node"] != builtOn {
			bad = append(bad, fmt.Sprintf("%q has image_node=%q, want %q", im.Name, im.Properties["image_node"], builtOn))
		}
	}
	for name := range want {
		if seen[name] != 1 {
			bad = append(bad, fmt.Sprintf("%q registered %d times", name, seen[name]))
		}
	}
	return strings.Join(bad, "\n")
}

// syncctl runs syncctl with node name's configuration and returns its
// output and exit code.
func (c *cluster) syncctl(name string, args ...string) (string, int) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := ctl.Main(ctx, append([]string{"--config", c.nodes[name].cfgPath}, args...), ctl.Options{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	if code != 0 {
		c.t.Logf("syncctl %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	return out.String(), code
}

// syncctlOn runs the syncctl binary as node name's host would: in the mount
// namespace of that node's syncd, where it sees the node's own files.
func (c *cluster) syncctlOn(name string, v any, args ...string) {
	c.t.Helper()
	n := c.nodes[name]
	argv := append([]string{"-t", strconv.Itoa(n.proc.Pid()), "-m", "--", daemontest.BuildSyncctl(c.t), "--config", n.cfgPath}, args...)
	cmd := exec.Command("nsenter", append(argv, "--json")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(c.t, err, "syncctl %s on node %s: %s", strings.Join(args, " "), name, stderr.String())
	require.NoError(c.t, json.Unmarshal(out, v), "%s", out)
}

func (c *cluster) syncctlJSON(name string, v any, args ...string) {
	c.t.Helper()
	out, code := c.syncctl(name, append(args, "--json")...)
	require.Zero(c.t, code, out)
	require.NoError(c.t, json.Unmarshal([]byte(out), v), out)
}

func newCloud(t testing.TB) *sandboxtest.Cloud {
	return daemontest.StartCloud(t, sandbox.Config{BlockSize: blockSize})
}
