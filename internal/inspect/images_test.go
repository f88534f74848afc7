package inspect_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/inspect"
	"github.com/imagesync/imagesync/internal/inspect/inspecttest"
)

const mib = inspecttest.MiB

func detectFile(t *testing.T, path string) *inspect.Report {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	rep, err := inspect.Detect(context.Background(), f, fi.Size(), inspect.Limits{})
	require.NoError(t, err)
	return rep
}

type wantPart struct {
	n       int
	fs      string
	primary bool
}

func parts(rep *inspect.Report) []wantPart {
	var out []wantPart
	for _, p := range rep.Partitions {
		if p.Extended {
			continue
		}
		out = append(out, wantPart{p.Number, p.Filesystem, p.Primary})
	}
	return out
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// TestRealImages builds disk images with the standard tools, as image build
// pipelines do, and checks what is detected in each, exactly.
func TestRealImages(t *testing.T) {
	dir := t.TempDir()
	root := inspecttest.DebianRoot(t, filepath.Join(dir, "root"))
	debian := func(rootPart, table string) map[string]string {
		return map[string]string{
			inspect.OSFamily: "linux", inspect.RootPartition: rootPart, inspect.PartitionTable: table,
			inspect.OS: "debian", inspect.Description: inspecttest.DebianPrettyName,
			inspect.Kernel: inspecttest.DebianKernel, inspect.Users: inspecttest.DebianUsers,
		}
	}
	cases := []struct {
		name     string
		build    func(t *testing.T, path string)
		props    map[string]string
		table    string
		parts    []wantPart
		evidence map[string]string // property → substring of its evidence
		notes    []string          // substrings, each in some note
		complete bool
	}{
		{
			name:  "MBR, ext4 root with Debian 12",
			build: func(t *testing.T, p string) { inspecttest.MBRExt(t, p, 24*mib, "ext4", root) },
			props: debian("1", "msdos"), table: "msdos", parts: []wantPart{{1, "ext4", true}}, complete: true,
			evidence: map[string]string{
				inspect.OS:            "partition 1 ext4 /etc/os-release (→ /usr/lib/os-release) (ID)",
				inspect.Description:   "partition 1 ext4 /etc/os-release",
				inspect.Users:         "partition 1 ext4 /etc/passwd",
				inspect.Kernel:        "partition 1 ext4 /boot/vmlinuz-6.1.0-18-amd64",
				inspect.RootPartition: "partition 1 ext4",
			},
		},
		{
			name:  "MBR, ext3 root",
			build: func(t *testing.T, p string) { inspecttest.MBRExt(t, p, 24*mib, "ext3", root) },
			props: debian("1", "msdos"), table: "msdos", parts: []wantPart{{1, "ext3", true}}, complete: true,
		},
		{
			name:  "MBR, ext2 root",
			build: func(t *testing.T, p string) { inspecttest.MBRExt(t, p, 24*mib, "ext2", root) },
			props: debian("1", "msdos"), table: "msdos", parts: []wantPart{{1, "ext2", true}}, complete: true,
		},
		{
			name:  "GPT, EFI System partition 1, ext4 root on partition 2",
			build: func(t *testing.T, p string) { inspecttest.GPTRootOn2(t, p, 48*mib, root) },
			props: debian("2", "gpt"), table: "gpt", parts: []wantPart{{1, "vfat", true}, {2, "ext4", true}}, complete: true,
			evidence: map[string]string{inspect.PartitionTable: "GPT header at byte 512", inspect.RootPartition: "partition 2 ext4"},
		},
		{
			name:  "MBR, NTFS partition (mkntfs)",
			build: func(t *testing.T, p string) { inspecttest.MBRNTFS(t, p, 16*mib) },
			props: map[string]string{inspect.OSFamily: "windows", inspect.RootPartition: "1", inspect.PartitionTable: "msdos"},
			table: "msdos", parts: []wantPart{{1, "ntfs", true}}, complete: true,
			evidence: map[string]string{inspect.OSFamily: "partition 1 ntfs: an NTFS boot sector"},
		},
		{
			name:  "NTFS on the whole file (mkntfs -F), no partition table",
			build: func(t *testing.T, p string) { inspecttest.NTFS(t, p, 8*mib, 0) },
			props: map[string]string{inspect.OSFamily: "windows"}, table: "", parts: []wantPart{{0, "ntfs", false}}, complete: true,
			notes: []string{"fills the whole disk"},
		},
		{
			name: "zero-filled",
			build: func(t *testing.T, p string) {
				require.NoError(t, os.WriteFile(p, nil, 0o644))
				require.NoError(t, os.Truncate(p, 8*mib))
			},
			props: map[string]string{}, table: "", complete: true,
			notes: []string{"no Linux root"},
		},
		{
			name: "truncated: the MBR and the superblock, not the inode tables",
			build: func(t *testing.T, p string) {
				inspecttest.MBRExt(t, p, 24*mib, "ext4", root)
				require.NoError(t, os.Truncate(p, mib+64<<10))
			},
			props: map[string]string{inspect.PartitionTable: "msdos"}, table: "msdos", parts: []wantPart{{1, "ext4", true}},
			notes: []string{"beyond the end of the 1114112-byte image (truncated?)", "the image ends early (truncated?)"}, complete: false,
		},
		{
			name: "random bytes",
			build: func(t *testing.T, p string) {
				b := make([]byte, 2*mib)
				r := rand.NewChaCha8([32]byte{1, 2, 3})
				_, _ = r.Read(b)
				writeFile(t, p, b)
			},
			props: map[string]string{}, table: "", complete: true,
		},
		{
			name: "a few bytes",
			build: func(t *testing.T, p string) {
				writeFile(t, p, []byte("not a disk"))
			},
			props: map[string]string{}, table: "", complete: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "disk.img")
			tc.build(t, path)
			rep := detectFile(t, path)
			t.Logf("notes %q, table %q, evidence %q, %d bytes read", rep.Notes, rep.TableEvidence, rep.Evidence, rep.BytesRead)
			assert.Equal(t, tc.props, rep.Properties, "notes: %q", rep.Notes)
			assert.Equal(t, tc.table, rep.PartitionTable)
			assert.Equal(t, tc.parts, parts(rep), "partitions: %+v", rep.Partitions)
			assert.Equal(t, tc.complete, rep.Complete, "notes: %q", rep.Notes)
			for k, sub := range tc.evidence {
				assert.Contains(t, rep.Evidence[k], sub, k)
			}
			for _, sub := range tc.notes {
				assert.True(t, containsAny(rep.Notes, sub), "a note saying %q in %q", sub, rep.Notes)
			}
			for k := range rep.Properties {
				assert.NotEmpty(t, rep.Evidence[k], "every property has its evidence: %s", k)
			}
			if rep.Size >= 512 {
				assert.Greater(t, rep.BytesRead, int64(0))
			}
			assert.Less(t, rep.BytesRead, int64(1*mib), "a few blocks are read, not the image")
		})
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestFilesystemSignatures: each filesystem the standard tools make is
// recognised, on the whole disk and inside MBR partitions (primary and
// logical), and a BSD slice gives OSFAMILY.
func TestFilesystemSignatures(t *testing.T) {
	t.Run("whole disk", func(t *testing.T) {
		cases := []struct {
			fs, tool string
			size     int64
			args     []string
		}{
			{"vfat", "mkfs.vfat", 8 * mib, nil},
			{"btrfs", "mkfs.btrfs", 16 * mib, []string{"-q", "--mixed"}},
			{"xfs", "mkfs.xfs", 320 * mib, []string{"-q"}}, // sparse; xfsprogs refuses less than 300 MB
			{"swap", "mkswap", 4 * mib, nil},
			{"ext4", "mke2fs", 4 * mib, []string{"-q", "-t", "ext4"}},
		}
		for _, tc := range cases {
			t.Run(tc.fs, func(t *testing.T) {
				inspecttest.RequireTools(t, tc.tool)
				p := filepath.Join(t.TempDir(), "fs.img")
				require.NoError(t, os.WriteFile(p, nil, 0o644))
				require.NoError(t, os.Truncate(p, tc.size))
				inspecttest.Run(t, tc.tool, append(tc.args, p)...)
				rep := detectFile(t, p)
				assert.Equal(t, []wantPart{{0, tc.fs, false}}, parts(rep), "%+v %q", rep.Partitions, rep.Notes)
				assert.Equal(t, "", rep.PartitionTable)
			})
		}
		t.Run("ufs", func(t *testing.T) {
			inspecttest.RequireTools(t, "makefs")
			src := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
			writeFile(t, filepath.Join(src, "etc", "fstab"), []byte("/dev/ada0p2 / ufs rw 1 1\n"))
			for _, v := range []string{"1", "2"} {
				p := filepath.Join(t.TempDir(), "ufs.img")
				inspecttest.Run(t, "makefs", "-t", "ffs", "-o", "version="+v, "-s", "2m", p, src)
				rep := detectFile(t, p)
				require.Len(t, rep.Partitions, 1, "%q", rep.Notes)
				assert.Equal(t, "ufs", rep.Partitions[0].Filesystem)
				assert.Contains(t, rep.Partitions[0].Evidence, "UFS"+v)
			}
		})
	})

	t.Run("MBR with primary, extended and logical partitions", func(t *testing.T) {
		inspecttest.RequireTools(t, "sfdisk", "mke2fs", "mkfs.vfat", "mkswap", "mkfs.btrfs", "dd")
		dir := t.TempDir()
		p := filepath.Join(dir, "disk.img")
		require.NoError(t, os.WriteFile(p, nil, 0o644))
		require.NoError(t, os.Truncate(p, 64*mib))
		inspecttest.RunStdin(t, "label: dos\n"+
			"start=2048, size=8MiB, type=c\n"+
			"size=4MiB, type=82\n"+
			"size=20MiB, type=83\n"+
			"type=5\n"+
			"size=12MiB, type=83\n"+
			"type=83\n", "sfdisk", "--quiet", p)
		s1, n1 := inspecttest.Partition(t, p, 1)
		inspecttest.Run(t, "mkfs.vfat", "--offset", itoa(s1), p, itoa(n1/2))
		s2, n2 := inspecttest.Partition(t, p, 2)
		sw := filepath.Join(dir, "swap")
		require.NoError(t, os.WriteFile(sw, nil, 0o644))
		require.NoError(t, os.Truncate(sw, n2*512))
		inspecttest.Run(t, "mkswap", sw)
		inspecttest.Run(t, "dd", "if="+sw, "of="+p, "bs=512", "seek="+itoa(s2), "conv=notrunc", "status=none")
		s3, n3 := inspecttest.Partition(t, p, 3)
		bt := filepath.Join(dir, "btrfs")
		require.NoError(t, os.WriteFile(bt, nil, 0o644))
		require.NoError(t, os.Truncate(bt, n3*512))
		inspecttest.Run(t, "mkfs.btrfs", "-q", "--mixed", bt)
		inspecttest.Run(t, "dd", "if="+bt, "of="+p, "bs=512", "seek="+itoa(s3), "conv=notrunc", "status=none")
		root := inspecttest.DebianRoot(t, filepath.Join(dir, "root"))
		s5, n5 := inspecttest.Partition(t, p, 5)
		inspecttest.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-d", root, "-E", "offset="+itoa(s5*512), p, itoa(n5/2)+"k")

		rep := detectFile(t, p)
		assert.Equal(t, []wantPart{{1, "vfat", true}, {2, "swap", true}, {3, "btrfs", true}, {5, "ext4", false}, {6, "", false}}, parts(rep), "%q", rep.Notes)
		ext, ok := rep.Partition(4)
		require.True(t, ok)
		assert.True(t, ext.Extended)
		// The Linux root is on a logical partition: snf-image cannot use it.
		assert.Equal(t, "linux", rep.Properties[inspect.OSFamily])
		assert.NotContains(t, rep.Properties, inspect.RootPartition)
		assert.True(t, containsAny(rep.Notes, "logical partition 5"), "%q", rep.Notes)
		assert.Equal(t, "debian", rep.Properties[inspect.OS])
	})

	t.Run("FreeBSD slice (MBR type a5) with UFS", func(t *testing.T) {
		inspecttest.RequireTools(t, "sfdisk", "makefs", "dd")
		dir := t.TempDir()
		p := filepath.Join(dir, "disk.img")
		require.NoError(t, os.WriteFile(p, nil, 0o644))
		require.NoError(t, os.Truncate(p, 8*mib))
		inspecttest.RunStdin(t, "label: dos\nstart=2048, type=a5, bootable\n", "sfdisk", "--quiet", p)
		src := t.TempDir()
		writeFile(t, filepath.Join(src, "COPYRIGHT"), []byte("FreeBSD\n"))
		u := filepath.Join(dir, "ufs")
		inspecttest.Run(t, "makefs", "-t", "ffs", "-o", "version=2", "-s", "4m", u, src)
		s1, _ := inspecttest.Partition(t, p, 1)
		inspecttest.Run(t, "dd", "if="+u, "of="+p, "bs=512", "seek="+itoa(s1), "conv=notrunc", "status=none")
		rep := detectFile(t, p)
		assert.Equal(t, map[string]string{inspect.OSFamily: "freebsd", inspect.RootPartition: "1", inspect.PartitionTable: "msdos"}, rep.Properties)
		assert.Contains(t, rep.Evidence[inspect.OSFamily], "type 0xa5 (FreeBSD) with a UFS superblock")
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
