package reliability

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) Sync() error { return nil }
func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// dumpRedis renders every key and value of one Redis database.
func dumpRedis(t *testing.T, rdb *redis.Client) []byte {
	t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	n := 0
	for iter.Next(ctx) {
		k := iter.Val()
		n++
		typ, err := rdb.Type(ctx, k).Result()
		require.NoError(t, err)
		fmt.Fprintf(&out, "%s (%s): ", k, typ)
		switch typ {
		case "string":
			v, _ := rdb.Get(ctx, k).Result()
			out.WriteString(v)
		case "hash":
			v, _ := rdb.HGetAll(ctx, k).Result()
			for f, x := range v {
				fmt.Fprintf(&out, "%s=%s ", f, x)
			}
		case "list":
			v, _ := rdb.LRange(ctx, k, 0, -1).Result()
			out.WriteString(strings.Join(v, " "))
		case "set":
			v, _ := rdb.SMembers(ctx, k).Result()
			out.WriteString(strings.Join(v, " "))
		case "zset":
			v, _ := rdb.ZRange(ctx, k, 0, -1).Result()
			out.WriteString(strings.Join(v, " "))
		}
		out.WriteByte('\n')
	}
	require.NoError(t, iter.Err())
	require.Positive(t, n, "nothing in Redis to check")
	return out.Bytes()
}

// TestSecretsNeverLeak runs a daemon through uploads, an archived bad
// metafile and a token revoked halfway (401), with logs at debug level, then
// checks that the token appears nowhere: not in the log (JSON as syncd
// writes it, and every structured field), not in any Redis key or value
// (task payloads, results, errors, the auth-pause reason), not in the output
// of syncctl status, list, inspect (--json and tables), images and plan,
// and not in /metrics or /readyz.
func TestSecretsNeverLeak(t *testing.T) {
	const token = "s3cr3t-T0KEN-9f8e7d6c5b4a"
	user := sandbox.User{Name: "carol", UUID: "ca401000-0000-4000-8000-000000000003", Token: token}
	cloud := daemontest.StartCloud(t, sandbox.Config{Users: []sandbox.User{user}, BlockSize: smallBlocks})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	cfg.Log.Level = "debug"

	var logBuf syncBuffer
	enc := zap.NewProductionEncoderConfig()
	jsonCore := zapcore.NewCore(zapcore.NewJSONEncoder(enc), &logBuf, zapcore.DebugLevel)
	obsLog, logs := observed(t)
	log := zap.New(zapcore.NewTee(jsonCore, obsLog.Core()))

	daemontest.WriteRandom(t, filepath.Join(dir, "ok.diskdump"), 150_000)
	daemontest.WriteRandom(t, filepath.Join(dir, "bad.diskdump"), 10_000)
	daemontest.WriteFile(t, filepath.Join(dir, "bad.diskdump.meta"), []byte(`{"disk-format": "vmdk"}`))
	d := daemontest.Run(t, cfg, log)
	insp := d.Inspector(t)
	requireAllRegistered(t, cloud, dir, smallBlocks, 60*time.Second, "ok.diskdump")
	daemontest.Eventually(t, 30*time.Second, "bad.diskdump to be archived", func() bool {
		return taskFor(daemontest.Tasks(t, insp, daemontest.StateArchived), jobs.TypeRegister, "bad.diskdump") != nil
	})

	// A 401 halfway through an upload.
	cloud.SetLatency(100 * time.Millisecond)
	daemontest.WriteRandom(t, filepath.Join(dir, "revoked.diskdump"), 30*smallBlocks)
	base := cloud.Stats().BlocksReceived
	daemontest.Eventually(t, 30*time.Second, "the upload to be under way", func() bool { return cloud.Stats().BlocksReceived > base+2 })
	cloud.RevokeToken(token)
	daemontest.Eventually(t, 30*time.Second, "the 401 to stop the upload", func() bool {
		ti := taskFor(daemontest.AllTasks(t, insp), jobs.TypeUpload, "revoked.diskdump")
		return ti != nil && strings.Contains(ti.LastErr, "401")
	})

	// syncctl, in-process, with the daemon's config (token included).
	ctlCfg := *cfg
	ctlCfg.Redis.Addr = d.Info.RedisAddr
	cfgPath := filepath.Join(t.TempDir(), "syncd.yaml")
	daemontest.WriteConfig(t, &ctlCfg, cfgPath)
	var ctlOut bytes.Buffer
	runCtl := func(args ...string) {
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		code := ctl.Main(ctx, append([]string{"--config", cfgPath}, args...), ctl.Options{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
		fmt.Fprintf(&ctlOut, "$ syncctl %s (exit %d)\n%s%s\n", strings.Join(args, " "), code, out.Bytes(), errOut.Bytes())
	}
	for _, js := range [][]string{nil, {"--json"}} {
		runCtl(append([]string{"status"}, js...)...)
		for _, st := range []string{"active", "pending", "scheduled", "retry", "archived", "completed"} {
			runCtl(append([]string{"list", st}, js...)...)
		}
		for _, ti := range daemontest.AllTasks(t, insp) {
			runCtl(append([]string{"inspect", ti.ID}, js...)...)
		}
		runCtl(append([]string{"images"}, js...)...)
		runCtl(append([]string{"plan"}, js...)...)
	}
	require.Contains(t, ctlOut.String(), "the cloud rejected the token (401)", "syncctl does not show the 401 failure")
	require.Contains(t, ctlOut.String(), `unknown disk format \"vmdk\"`, "syncctl does not show the archived failure")

	_, metrics := get(t, "http://"+d.Info.HTTPAddr+"/metrics")
	_, ready := get(t, "http://"+d.Info.HTTPAddr+"/readyz")

	redisDump := dumpRedis(t, d.Redis(t))
	require.Contains(t, string(redisDump), "revoked.diskdump", "the Redis dump misses the 401 task")

	var fields bytes.Buffer
	for _, e := range logs.All() {
		fmt.Fprintf(&fields, "%s %v\n", e.Message, e.ContextMap())
	}
	require.Contains(t, fields.String(), "THE CLOUD REJECTED THE TOKEN")

	for name, b := range map[string][]byte{
		"syncd's JSON log": logBuf.Bytes(), "syncd's log fields": fields.Bytes(), "Redis": redisDump,
		"syncctl output": ctlOut.Bytes(), "/metrics": []byte(metrics), "/readyz": []byte(ready),
	} {
		if i := bytes.Index(b, []byte(token)); i >= 0 {
			t.Errorf("the token appears in %s: …%s…", name, b[max(0, i-200):min(len(b), i+len(token)+100)])
		}
	}
	// syncctl redacts the token as a last resort; it must have had nothing
	// to redact.
	require.NotContains(t, ctlOut.String(), "[REDACTED]", "syncctl had to redact a token it read from Redis or the cloud")
	t.Logf("checked %d bytes of log, %d of Redis, %d of syncctl output: no token", len(logBuf.Bytes()), len(redisDump), ctlOut.Len())
}
