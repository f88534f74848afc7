package daemon

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// cloudWrites records every request that changes something in the cloud:
// anything but GET and HEAD, except the identity and account lookups
// (POST /tokens, POST /user_catalogs), which only read.
type cloudWrites struct {
	mu     sync.Mutex
	writes []string
}

func (c *cloudWrites) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead &&
			!strings.HasPrefix(r.URL.Path, "/identity/") && !strings.HasPrefix(r.URL.Path, "/account/") {
			c.mu.Lock()
			c.writes = append(c.writes, r.Method+" "+r.URL.RequestURI())
			c.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (c *cloudWrites) since(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.writes[n:]...)
}

func (c *cloudWrites) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.writes)
}

// TestRestartWithNothingChangedWritesNothing: a syncd restarted over folders
// that are already in sync makes no write to the cloud at all (no hashmap
// PUT, no .meta PUT, no registration, no members PUT), and logs no metafile
// "change", whether its Redis forgot everything (embedded) or remembers.
func TestRestartWithNothingChangedWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		redis func(t *testing.T) config.Redis
	}{
		{"embedded", func(*testing.T) config.Redis {
			return config.Redis{Addr: config.EmbeddedRedis, EmbeddedListen: "127.0.0.1:0"}
		}},
		{"redis", testRedis},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writes := &cloudWrites{}
			cloud := sandboxtest.StartWrapped(t, sandbox.Config{}, writes.wrap)
			dir := filepath.Join(t.TempDir(), "images")
			cfg := testConfig(t, cloud, dir)
			cfg.Redis = tc.redis(t)
			cfg.Rescan = config.Duration(time.Hour)
			writeFile(t, filepath.Join(dir, "_template.meta"), `{"properties": {"OS": "debian"}}`)
			writeRandom(t, filepath.Join(dir, "a.diskdump"), 40<<10)
			writeRandom(t, filepath.Join(dir, "sub", "b.diskdump"), 20<<10)
			writeFile(t, filepath.Join(dir, "sub", "b.diskdump.meta"), `{"name": "bee", "is_public": true}`)

			info, stop := startDaemon(t, cfg, nil)
			insp := inspector(t, cfg, info)
			eventually(t, 60*time.Second, "both images registered and their .meta uploaded", func() bool {
				return len(images(t, cloud, cloud.User)) == 2 &&
					objectHead(t, cloud, "images", "a.diskdump.meta") != nil && objectHead(t, cloud, "images", "sub/b.diskdump.meta") != nil
			})
			waitIdle(t, insp, cfg.Node, 60*time.Second)
			stop()
			before := writes.count()
			require.NotZero(t, before, "the first run uploaded and registered")
			statsBefore := cloud.Stats()

			core, logs := observer.New(zapcore.InfoLevel)
			info, _ = startDaemon(t, cfg, zap.New(core))
			insp = inspector(t, cfg, info)
			// The restart's work is done once both images were seen again
			// and the queues stayed empty for a while.
			eventually(t, 60*time.Second, "both images reported again", func() bool {
				return logs.FilterMessage("image ready").Len() >= 2
			})
			waitQuiet(t, insp, 2*time.Second)
			assert.Zero(t, countQueues(t, insp).Archived, "nothing failed")
			assert.Empty(t, writes.since(before), "a restart with nothing changed writes nothing to the cloud")
			assert.Zero(t, logs.FilterMessage("metafile changed: registration queued").Len(),
				"unchanged metafiles are not changes")
			// The sandbox's own counters agree: no hashmap or object PUT, no
			// block, no registration or metadata update.
			st := cloud.Stats()
			assert.Equal(t, statsBefore.HashmapPuts, st.HashmapPuts, "hashmap_puts")
			assert.Equal(t, statsBefore.ObjectPuts, st.ObjectPuts, "object_puts")
			assert.Equal(t, statsBefore.BlocksReceived, st.BlocksReceived, "blocks_received")
			assert.Equal(t, statsBefore.ImageRegisters, st.ImageRegisters, "image_registers")
			assert.Equal(t, statsBefore.ImageUpdates, st.ImageUpdates, "image_updates")
		})
	}
}

// waitQuiet waits until no task has been waiting or running for quiet.
func waitQuiet(t *testing.T, insp *asynq.Inspector, quiet time.Duration) {
	t.Helper()
	since := time.Time{}
	eventually(t, 60*time.Second, "the queues to stay empty for "+quiet.String(), func() bool {
		if countQueues(t, insp).Unfinished > 0 {
			since = time.Time{}
			return false
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) > quiet
	})
}
