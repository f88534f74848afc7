package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// A watch root with unregister_deleted unregisters the image of a removed
// file and keeps its object; a root without it only logs the removal.
func TestE2ERemovedImageUnregisteredOnlyWhereAskedFor(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 4096})
	base := t.TempDir()
	cfg := testConfig(t, cloud, filepath.Join(base, "drop"))
	keep := filepath.Join(base, "keep")
	cfg.Watch[0].UnregisterDeleted = true
	cfg.Watch = append(cfg.Watch, config.Watch{Dir: keep, Container: "kept"})
	require.NoError(t, cfg.Validate())
	writeRandom(t, filepath.Join(cfg.Watch[0].Dir, "a.diskdump"), 10000)
	writeRandom(t, filepath.Join(keep, "b.diskdump"), 10000)
	runDaemon(t, cfg, nil)

	eventually(t, 30*time.Second, "both images registered", func() bool {
		imgs := images(t, cloud, cloud.User)
		return imageByName(imgs, "a.diskdump") != nil && imageByName(imgs, "b.diskdump") != nil
	})
	require.NoError(t, os.Remove(filepath.Join(cfg.Watch[0].Dir, "a.diskdump")))
	require.NoError(t, os.Remove(filepath.Join(keep, "b.diskdump")))
	eventually(t, 30*time.Second, "a.diskdump unregistered", func() bool {
		return imageByName(images(t, cloud, cloud.User), "a.diskdump") == nil
	})
	require.NotNil(t, objectHead(t, cloud, "images", "a.diskdump"), "the object stays")
	require.NotNil(t, imageByName(images(t, cloud, cloud.User), "b.diskdump"), "the other root only logs the removal")
}
