package inspect_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/inspect"
	"github.com/imagesync/imagesync/internal/inspect/inspecttest"
)

// slowReader delays every read, as a hung NFS server would.
type slowReader struct {
	r     *os.File
	delay time.Duration
	reads atomic.Int64
}

func (s *slowReader) ReadAt(p []byte, off int64) (int, error) {
	s.reads.Add(1)
	time.Sleep(s.delay)
	return s.r.ReadAt(p, off)
}

// panicReader panics, as a library bug on strange input would.
type panicReader struct{}

func (panicReader) ReadAt([]byte, int64) (int, error) { panic("boom") }

func debianDisk(t *testing.T, mutate func(root string)) string {
	t.Helper()
	dir := t.TempDir()
	root := inspecttest.DebianRoot(t, filepath.Join(dir, "root"))
	if mutate != nil {
		mutate(root)
	}
	p := filepath.Join(dir, "disk.img")
	inspecttest.MBRExt(t, p, 24*mib, "ext4", root)
	return p
}

func TestDetectIsBounded(t *testing.T) {
	disk := debianDisk(t, nil)
	f, err := os.Open(disk)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)

	t.Run("byte budget", func(t *testing.T) {
		rep, err := inspect.Detect(context.Background(), f, fi.Size(), inspect.Limits{Bytes: 6000})
		require.NoError(t, err)
		assert.False(t, rep.Complete)
		assert.LessOrEqual(t, rep.BytesRead, int64(6000))
		assert.True(t, containsAny(rep.Notes, "more than the 6000 bytes detection may read"), "%q", rep.Notes)
		assert.NotContains(t, rep.Properties, inspect.Users, "stopped before reading the files")
	})
	t.Run("deadline", func(t *testing.T) {
		sr := &slowReader{r: f, delay: 20 * time.Millisecond}
		start := time.Now()
		rep, err := inspect.Detect(context.Background(), sr, fi.Size(), inspect.Limits{Timeout: 100 * time.Millisecond})
		require.NoError(t, err)
		assert.Less(t, time.Since(start), 5*time.Second, "stops soon after the deadline")
		assert.False(t, rep.Complete)
		assert.True(t, rep.TimedOut)
		assert.True(t, containsAny(rep.Notes, "stopped after 100ms"), "%q", rep.Notes)
		assert.Less(t, sr.reads.Load(), int64(20))
	})
	t.Run("the caller gives up", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := inspect.Detect(ctx, f, fi.Size(), inspect.Limits{})
		assert.ErrorIs(t, err, context.Canceled)
	})
	t.Run("a panic is a note", func(t *testing.T) {
		rep, err := inspect.Detect(context.Background(), panicReader{}, 1<<20, inspect.Limits{})
		require.NoError(t, err)
		assert.False(t, rep.Complete)
		assert.True(t, containsAny(rep.Notes, "stopped on malformed data (boom)"), "%q", rep.Notes)
	})
}

// TestHostileFilesystems: loops and oversized files in a real filesystem
// are cut off with a note, not followed.
func TestHostileFilesystems(t *testing.T) {
	t.Run("symlink loop", func(t *testing.T) {
		disk := debianDisk(t, func(root string) {
			require.NoError(t, os.Remove(filepath.Join(root, "usr/lib/os-release")))
			require.NoError(t, os.Symlink("../../etc/os-release", filepath.Join(root, "usr/lib/os-release")))
		})
		rep := detectFile(t, disk)
		assert.Equal(t, "linux", rep.Properties[inspect.OSFamily])
		assert.NotContains(t, rep.Properties, inspect.OS)
		assert.True(t, containsAny(rep.Notes, "more than 8 symlinks"), "%q", rep.Notes)
		assert.Equal(t, inspecttest.DebianUsers, rep.Properties[inspect.Users], "the rest is still read")
	})
	t.Run("huge passwd", func(t *testing.T) {
		disk := debianDisk(t, func(root string) {
			var b strings.Builder
			b.WriteString("root:x:0:0:root:/root:/bin/bash\n")
			for i := 0; b.Len() < 600<<10; i++ {
				fmt.Fprintf(&b, "user%05d:x:%d:%d::/home/u:/bin/bash\n", i, 2000+i, 2000+i)
			}
			require.NoError(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(b.String()), 0o644))
		})
		rep := detectFile(t, disk)
		assert.True(t, containsAny(rep.Notes, "/etc/passwd is longer than 262144 bytes"), "%q", rep.Notes)
		users := rep.Properties[inspect.Users]
		assert.True(t, strings.HasPrefix(users, "root user00000 user00001"), users)
		assert.LessOrEqual(t, len(users), 256)
		assert.True(t, containsAny(rep.Notes, "fit in a property value"), "%q", rep.Notes)
		assert.Less(t, rep.BytesRead, int64(1<<20))
	})
	t.Run("huge directory", func(t *testing.T) {
		disk := debianDisk(t, func(root string) {
			for i := 0; i < 300; i++ {
				require.NoError(t, os.WriteFile(filepath.Join(root, "boot", fmt.Sprintf("a%03d", i)), nil, 0o644))
			}
		})
		f, err := os.Open(disk)
		require.NoError(t, err)
		defer f.Close()
		fi, _ := f.Stat()
		rep, err := inspect.Detect(context.Background(), f, fi.Size(), inspect.Limits{DirEntries: 100})
		require.NoError(t, err)
		assert.True(t, containsAny(rep.Notes, "/boot has more than 100 entries"), "%q", rep.Notes)
	})
	t.Run("values Plankton cannot store are left out", func(t *testing.T) {
		disk := debianDisk(t, func(root string) {
			long := strings.Repeat("x", 300)
			require.NoError(t, os.WriteFile(filepath.Join(root, "usr/lib/os-release"),
				[]byte("ID=debian\nPRETTY_NAME=\""+long+"\"\n"), 0o644))
		})
		rep := detectFile(t, disk)
		assert.Equal(t, "debian", rep.Properties[inspect.OS])
		assert.NotContains(t, rep.Properties, inspect.Description)
		assert.True(t, containsAny(rep.Notes, "DESCRIPTION: partition 1 ext4 /etc/os-release"), "%q", rep.Notes)
	})
}

// TestImplausibleGPT: a GPT whose checksums are right but whose entry
// array would be 128 MiB never reaches go-diskfs, which would allocate it.
func TestImplausibleGPT(t *testing.T) {
	inspecttest.RequireTools(t, "sgdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	require.NoError(t, os.Truncate(p, 8*mib))
	inspecttest.Run(t, "sgdisk", "--clear", "-n", "1:2048:0", p)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	// 2^20 entries of 128 bytes, with a recomputed header checksum.
	hdr := b[512:604]
	hdr[80], hdr[81], hdr[82], hdr[83] = 0, 0, 0x10, 0
	setGPTHeaderCRC(hdr)
	rep, err := inspect.Detect(context.Background(), bytes.NewReader(b), int64(len(b)), inspect.Limits{})
	require.NoError(t, err)
	assert.Equal(t, "", rep.PartitionTable)
	assert.True(t, containsAny(rep.Notes, "implausible partition entry array: 1048576 entries of 128 bytes"), "%q", rep.Notes)
	assert.Less(t, rep.BytesRead, int64(64<<10))
}

func setGPTHeaderCRC(hdr []byte) {
	binary.LittleEndian.PutUint32(hdr[16:], 0)
	binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr[:92]))
}
