// Package inspecttest builds small, real disk images with the standard
// tools (sfdisk, sgdisk, mke2fs, mkntfs, mkfs.vfat, …) for tests, without
// root: filesystems are made at an offset inside a plain file.
package inspecttest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireEnv, when set (CI sets it), turns a missing tool into a failure
// instead of a skip.
const RequireEnv = "IMAGESYNC_REQUIRE_DISK_TOOLS"

// Packages names the Debian package of each tool, for messages.
var Packages = map[string]string{
	"sfdisk": "fdisk", "sgdisk": "gdisk", "mke2fs": "e2fsprogs", "mkntfs": "ntfs-3g",
	"mkfs.vfat": "dosfstools", "mkfs.xfs": "xfsprogs", "mkfs.btrfs": "btrfs-progs", "makefs": "makefs", "dd": "coreutils",
}

// RequireTools skips the test when one of the tools is missing (fails, when
// RequireEnv is set).
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not found (Debian package %s; .ci/run installs it)", tool, Packages[tool])
			if os.Getenv(RequireEnv) != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// RunStdin runs a command with stdin.
func RunStdin(t testing.TB, stdin, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// Debian12 is what DebianRoot writes.
const (
	DebianPrettyName = "Debian GNU/Linux 12 (bookworm)"
	DebianKernel     = "6.1.0-18-amd64"
	DebianUsers      = "root alice bob"
)

// DebianRoot writes a small Debian 12 root filesystem tree under dir: the
// os-release of a real Debian 12 (with /etc/os-release a symlink to
// ../usr/lib/os-release, as Debian ships it), a passwd with root, system
// accounts and two login users (alice, bob), a login.defs, an fstab and
// /boot/vmlinuz-6.1.0-18-amd64.
func DebianRoot(t testing.TB, dir string) string {
	t.Helper()
	files := map[string]string{
		"usr/lib/os-release": `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
`,
		"etc/passwd": `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/bin/sh
sync:x:4:65534:sync:/bin:/bin/sync
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
bob:x:1001:1001:Bob,,,:/home/bob:/usr/bin/zsh
`,
		"etc/login.defs":                  "# /etc/login.defs\nUID_MIN\t\t\t 1000\nUID_MAX\t\t\t60000\n",
		"etc/fstab":                       "UUID=0a1b2c3d / ext4 errors=remount-ro 0 1\n",
		"etc/hostname":                    "debian\n",
		"boot/vmlinuz-" + DebianKernel:    "not really a kernel\n",
		"boot/config-" + DebianKernel:     "CONFIG_X86_64=y\n",
		"boot/System.map-" + DebianKernel: "\n",
		"home/alice/.profile":             "\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(dir, "etc", "os-release")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// MiB is a mebibyte.
const MiB = 1 << 20

// MBRExt builds at path a disk image of size bytes with an MBR (sfdisk) and
// one bootable Linux partition from 1 MiB to the end, holding an fstype
// (ext2, ext3, ext4) filesystem made by mke2fs -d from root.
func MBRExt(t testing.TB, path string, size int64, fstype, root string) {
	t.Helper()
	RequireTools(t, "sfdisk", "mke2fs")
	truncate(t, path, size)
	RunStdin(t, "label: dos\nstart=2048, type=83, bootable\n", "sfdisk", "--quiet", path)
	start, sectors := Partition(t, path, 1)
	mkext(t, path, fstype, root, start, sectors)
}

// GPTRootOn2 builds a GPT disk (sgdisk) with an EFI System partition (1,
// vfat, 8 MiB) and the Linux root on partition 2 (ext4 from root).
func GPTRootOn2(t testing.TB, path string, size int64, root string) {
	t.Helper()
	RequireTools(t, "sgdisk", "sfdisk", "mke2fs", "mkfs.vfat")
	truncate(t, path, size)
	Run(t, "sgdisk", "--clear", "-n", "1:2048:+8M", "-t", "1:ef00", "-c", "1:EFI", "-n", "2:0:0", "-t", "2:8304", "-c", "2:root", path)
	start, sectors := Partition(t, path, 1)
	Run(t, "mkfs.vfat", "-F", "32", "--offset", fmt.Sprint(start), path, fmt.Sprint(sectors/2))
	start, sectors = Partition(t, path, 2)
	mkext(t, path, "ext4", root, start, sectors)
}

// MBRNTFS builds an MBR disk with one NTFS partition (type 7): mkntfs
// formats a file the size of the partition, which dd copies into place.
func MBRNTFS(t testing.TB, path string, size int64) {
	t.Helper()
	RequireTools(t, "sfdisk", "mkntfs", "dd")
	truncate(t, path, size)
	RunStdin(t, "label: dos\nstart=2048, type=7, bootable\n", "sfdisk", "--quiet", path)
	start, sectors := Partition(t, path, 1)
	part := path + ".ntfs"
	NTFS(t, part, sectors*512, start)
	Run(t, "dd", "if="+part, "of="+path, "bs=512", fmt.Sprintf("seek=%d", start), "conv=notrunc,sparse", "status=none")
	if err := os.Remove(part); err != nil {
		t.Fatal(err)
	}
}

// NTFS makes an NTFS filesystem filling the file at path (mkntfs -F: it is
// not a block device); start is the partition's first sector, recorded in
// the boot sector.
func NTFS(t testing.TB, path string, size, start int64) {
	t.Helper()
	RequireTools(t, "mkntfs")
	truncate(t, path, size)
	Run(t, "mkntfs", "--quiet", "--force", "--fast", "--sector-size", "512", "--partition-start", fmt.Sprint(start),
		"--heads", "255", "--sectors-per-track", "63", "--label", "Windows", path)
}

// Partition returns the first sector and the sector count of partition n
// of the disk image at path, as sfdisk reads them.
func Partition(t testing.TB, path string, n int) (start, sectors int64) {
	t.Helper()
	var doc struct {
		PartitionTable struct {
			Partitions []struct {
				Node  string `json:"node"`
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	out := Run(t, "sfdisk", "--json", path)
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("sfdisk --json %s: %v\n%s", path, err, out)
	}
	suffix := fmt.Sprint(n)
	for _, p := range doc.PartitionTable.Partitions {
		if len(p.Node) > len(path) && p.Node[len(path):] == suffix {
			return p.Start, p.Size
		}
	}
	t.Fatalf("no partition %d in %s:\n%s", n, path, out)
	return 0, 0
}

// mkext makes an ext filesystem from root inside the image, at sector start.
func mkext(t testing.TB, path, fstype, root string, start, sectors int64) {
	t.Helper()
	args := []string{"-q", "-F", "-t", fstype, "-E", fmt.Sprintf("offset=%d", start*512), "-L", "root"}
	if root != "" {
		args = append(args, "-d", root)
	}
	args = append(args, path, fmt.Sprintf("%dk", sectors/2))
	Run(t, "mke2fs", args...)
}

func truncate(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
