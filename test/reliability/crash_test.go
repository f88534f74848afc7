package reliability

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/hashmap"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// TestCrashSafety SIGKILLs a syncd child process at six points of the
// upload → register → publish flow, each landed exactly by holding the
// request that follows that point in the sandbox, and restarts it: the image
// ends registered once (one image, the id it had if it was registered before
// the kill), with its metafile's metadata and members, and the restarted
// upload sends only the blocks the cloud did not have. The child uses its
// embedded Redis; one more point runs on a real redis-server of the test's
// own.
func TestCrashSafety(t *testing.T) {
	bin := daemontest.BuildSyncd(t)
	type point struct {
		name      string
		blockSize int
		size      int
		// hold returns the hold whose arrival is the kill point.
		hold func(h *daemontest.Holds) *daemontest.Hold
		// durable runs the child on a real Redis: the queue
		// survives the kill, and the restarted syncd reclaims the task the
		// dead one held. Otherwise the child's embedded Redis dies with it
		// and the restart rebuilds the queue from the folder.
		durable bool
		// registered: the kill comes after the registration POST.
		registered bool
	}
	points := []point{
		// The first hashmap PUT of a file this size is the probe the upload
		// sends after 8 of 32 blocks, while it is still hashing the rest
		// (pithos.overlappedUpload). Held, nothing is answered, created or
		// sent before the kill. (Waiting for "uploading image" in the log
		// instead raced the probe, which comes tens of milliseconds later.)
		{name: "during hashing", blockSize: hashmap.DefaultBlockSize, size: 128 << 20, hold: func(h *daemontest.Holds) *daemontest.Hold {
			return h.Before(daemontest.IsHashmapPut)
		}},
		{name: "during block upload", blockSize: smallBlocks, size: 48 * smallBlocks, hold: func(h *daemontest.Holds) *daemontest.Hold {
			n := 0
			return h.Before(func(r *http.Request) bool {
				if !daemontest.IsBlockUpload(r) {
					return false
				}
				n++
				return n > 12
			})
		}},
		{name: "after the hashmap PUT, before registration", blockSize: smallBlocks, size: 20 * smallBlocks, hold: func(h *daemontest.Holds) *daemontest.Hold {
			return h.Before(daemontest.IsRegister)
		}},
		{name: "registration applied, answer not received", blockSize: smallBlocks, size: 20 * smallBlocks, registered: true, hold: func(h *daemontest.Holds) *daemontest.Hold {
			return h.After(daemontest.IsRegister)
		}},
		{name: "after registration, before publish (uploading .meta)", blockSize: smallBlocks, size: 20 * smallBlocks, registered: true, hold: func(h *daemontest.Holds) *daemontest.Hold {
			return h.Before(daemontest.IsMetafilePut)
		}},
		{name: "during publish (members)", blockSize: smallBlocks, size: 20 * smallBlocks, registered: true, hold: func(h *daemontest.Holds) *daemontest.Hold {
			return h.Before(daemontest.IsMembersPut)
		}},
	}
	blockUpload := points[1]
	blockUpload.name, blockUpload.durable = "during block upload, durable Redis", true
	points = append(points, blockUpload)
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			rc := daemontest.EmbeddedRedis()
			if pt.durable {
				rc = daemontest.Redis(t)
			}
			cloud, holds := daemontest.StartHoldableCloud(t, sandbox.Config{BlockSize: pt.blockSize})
			dir := filepath.Join(t.TempDir(), "images")
			const rel = "crash/img.diskdump"
			daemontest.WriteRandom(t, filepath.Join(dir, rel), pt.size)
			daemontest.WriteFile(t, filepath.Join(dir, rel+".meta"), []byte(fmt.Sprintf(
				`{"name": "Crash test image", "is-public": true, "members": [%q], "properties": {"ROLE": "crash-test"}}`, sandboxtest.Bob.UUID)))
			cfg := daemontest.Config(t, cloud, rc, dir)
			cfg.Upload.HashWorkers = 1
			cfgPath := filepath.Join(t.TempDir(), "syncd.yaml")
			daemontest.WriteConfig(t, cfg, cfgPath)
			logPath := filepath.Join(t.TempDir(), "syncd.log")
			nblocks := hashmap.NumBlocks(int64(pt.size), int64(pt.blockSize))

			hold := pt.hold(holds)
			p := daemontest.StartSyncd(t, bin, cfgPath, logPath)
			select {
			case <-hold.Arrived():
			case <-time.After(60 * time.Second):
				t.Fatalf("the kill point was not reached in 60s\n%s", p.Log(t))
			}
			p.Kill(t)
			before := cloud.Stats()
			var idBefore string
			if im := daemontest.ImageByName(daemontest.Images(t, cloud), "Crash test image"); im != nil {
				idBefore = im.ID
			}
			// Let the sandbox notice the dead client's held requests, so
			// that none of them is served after the release.
			daemontest.Eventually(t, 10*time.Second, "the killed syncd's held requests to be dropped", func() bool { return holds.Waiting() == 0 })
			holds.ReleaseAll()

			p2 := daemontest.StartSyncd(t, bin, cfgPath, logPath)
			p2.WaitRunning(t, 30*time.Second)
			var im *daemontest.Image
			daemontest.Eventually(t, 150*time.Second, "the image to be registered and published", func() bool {
				im = daemontest.ImageByName(daemontest.Images(t, cloud), "Crash test image")
				return im != nil && im.IsPublic && slices.Contains(daemontest.Members(t, cloud, im.ID), sandboxtest.Bob.UUID)
			})
			after := cloud.Stats()
			if err := p2.Terminate(t, 30*time.Second); err != nil {
				log := p2.Log(t)
				t.Fatalf("syncd did not stop cleanly on SIGTERM: %v\n%s", err, log[max(0, len(log)-4000):])
			}

			imgs := daemontest.Images(t, cloud)
			require.Len(t, imgs, 1, "%+v", imgs)
			require.Equal(t, daemontest.FileHash(t, filepath.Join(dir, rel), pt.blockSize), im.Checksum)
			require.Equal(t, int64(pt.size), im.Size)
			require.Equal(t, "crash-test", im.Properties["role"])
			require.Equal(t, "linux", im.Properties["osfamily"])
			require.Equal(t, []string{sandboxtest.Bob.UUID}, daemontest.Members(t, cloud, im.ID))
			if idBefore != "" {
				require.Equal(t, idBefore, im.ID, "the image id changed across the crash")
			}
			require.Empty(t, daemontest.HalfRegistered(t, cloud))
			resent := after.BlocksReceived - before.BlocksReceived
			t.Logf("%s: %d blocks; %d received before the kill, %d after the restart; registrations %d before, %d after; image %s",
				pt.name, nblocks, before.BlocksReceived, resent, before.ImageRegisters, after.ImageRegisters, im.ID)
			require.Equal(t, nblocks, before.BlocksReceived+resent, "blocks were sent twice (or not at all)")
			if pt.registered {
				// The restarted registration may POST again (the dead one's
				// answer was lost), onto the same image id.
				require.LessOrEqual(t, after.ImageRegisters, before.ImageRegisters+1)
			} else {
				require.Equal(t, int64(1), after.ImageRegisters, "registered more than once")
			}
		})
	}
}
