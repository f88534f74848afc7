package inspect

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Seeds for the fuzzers: a small real disk (MBR + ext2 with /etc files)
// when the tools are there, and hand-made tables otherwise.

// smallDisk builds a 192 KiB MBR disk with a 1 KiB-block ext2 holding a
// few root files; nil without the tools.
func smallDisk(tb testing.TB) []byte {
	tb.Helper()
	if _, err := exec.LookPath("mke2fs"); err != nil {
		return nil
	}
	dir := tb.TempDir()
	root := filepath.Join(dir, "root")
	for name, body := range map[string]string{
		"etc/os-release":              "ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
		"etc/passwd":                  "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n",
		"boot/vmlinuz-6.1.0-18-amd64": "k",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	img := filepath.Join(dir, "disk.img")
	disk := make([]byte, 192<<10)
	copy(disk[446:], mbrEntry(0x80, 0x83, 2, 380))
	disk[510], disk[511] = 0x55, 0xaa
	if err := os.WriteFile(img, disk, 0o644); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-N", "16", "-d", root,
		"-E", "offset=1024", img, "190").CombinedOutput()
	if err != nil {
		tb.Logf("mke2fs: %v: %s", err, out)
		return nil
	}
	b, err := os.ReadFile(img)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mbrEntry(boot, typ byte, start, sectors uint32) []byte {
	e := make([]byte, 16)
	e[0], e[4] = boot, typ
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], sectors)
	return e
}

// gptDisk is a small disk with a valid protective MBR and GPT (primary
// only) with the given entry count and size, and one partition.
func gptDisk(count, esize uint32) []byte {
	disk := make([]byte, 64<<10)
	copy(disk[446:], mbrEntry(0, 0xee, 1, 127))
	disk[510], disk[511] = 0x55, 0xaa
	entries := make([]byte, count*esize)
	if count > 0 {
		copy(entries[0:16], []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4})
		entries[16] = 1
		binary.LittleEndian.PutUint64(entries[32:], 34)
		binary.LittleEndian.PutUint64(entries[40:], 120)
	}
	copy(disk[1024:], entries)
	h := disk[512:604]
	copy(h, "EFI PART")
	copy(h[8:], []byte{0, 0, 1, 0})
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[32:], 127)
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], 120)
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], count)
	binary.LittleEndian.PutUint32(h[84:], esize)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	return disk
}

// checkReport holds for every report, whatever the input.
func checkReport(t *testing.T, rep *Report, lim Limits) {
	t.Helper()
	for _, n := range rep.Notes {
		if strings.Contains(n, "stopped on malformed data") {
			t.Fatalf("a parser panicked: %s", n)
		}
	}
	if rep.BytesRead > lim.withDefaults().Bytes {
		t.Fatalf("read %d bytes, over the %d budget", rep.BytesRead, lim.withDefaults().Bytes)
	}
	for k, v := range rep.Properties {
		if rep.Evidence[k] == "" {
			t.Fatalf("property %s without evidence", k)
		}
		if v == "" || !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxValue || strings.ContainsAny(v, "\x00\n") {
			t.Fatalf("property %s has a value Plankton cannot store: %q", k, v)
		}
	}
}

// FuzzDetect feeds whole images (tables, signatures, the ext reader).
func FuzzDetect(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 4096))
	f.Add(gptDisk(128, 128))
	f.Add(gptDisk(4, 256))
	ext := make([]byte, 8192)
	copy(ext[446:], mbrEntry(0, 0x05, 2, 10)) // an extended partition
	ext[510], ext[511] = 0x55, 0xaa
	copy(ext[1024+446:], mbrEntry(0, 0x83, 1, 4))
	copy(ext[1024+462:], mbrEntry(0, 0x05, 2, 4)) // chains back to itself
	ext[1024+510], ext[1024+511] = 0x55, 0xaa
	f.Add(ext)
	if d := smallDisk(f); d != nil {
		f.Add(d)
	}
	lim := Limits{Bytes: 4 << 20, Timeout: 5 * time.Second, FileBytes: 4096, DirEntries: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Detect(context.Background(), bytes.NewReader(data), int64(len(data)), lim)
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, lim)
		for _, p := range rep.Partitions {
			if p.Number < 0 || p.Size < 0 {
				t.Fatalf("partition %+v", p)
			}
		}
		for _, fd := range Check(rep.Properties[OSFamily], rep.Properties[RootPartition], rep) {
			if fd.Error {
				t.Fatalf("detected values contradict the disk they were detected in: %s", fd)
			}
		}
	})
}

// FuzzPartitionTable feeds the first sectors: MBR, GPT (with its checks
// before go-diskfs) and the logical partition chain.
func FuzzPartitionTable(f *testing.F) {
	f.Add(gptDisk(128, 128)[:8192])
	f.Add(gptDisk(1<<20, 128)[:8192]) // implausible entry count with valid checksums
	mbr := make([]byte, 1024)
	copy(mbr[446:], mbrEntry(0x80, 0x83, 2048, 1<<20))
	mbr[510], mbr[511] = 0x55, 0xaa
	f.Add(mbr)
	f.Fuzz(func(t *testing.T, data []byte) {
		// A large image behind the fuzzed sectors, so offsets in the
		// table point somewhere: reads there return zeros.
		r := &sparseImage{head: data, size: 1 << 40}
		lim := Limits{Bytes: 8 << 20, Timeout: 5 * time.Second}
		d := &detector{r: newBoundedReader(context.Background(), r, r.size, lim.withDefaults().Bytes), lim: lim.withDefaults(),
			rep: &Report{Properties: map[string]string{}, Evidence: map[string]string{}, Complete: true, Size: r.size}}
		d.guard("table", d.readTable)
		checkReport(t, d.rep, lim)
		for _, p := range d.rep.Partitions {
			if p.Number > 4+maxLogical || (p.Number > 4 && d.rep.PartitionTable == TableMSDOS && p.Primary) {
				t.Fatalf("partition %+v", p)
			}
		}
	})
}

// sparseImage is data followed by zeros up to size.
type sparseImage struct {
	head []byte
	size int64
}

func (s *sparseImage) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	if off < int64(len(s.head)) {
		copy(p, s.head[off:])
	}
	return len(p), nil
}

// FuzzExtSuperblock feeds superblocks to the signature check and to
// openExt, then walks the filesystem behind it.
func FuzzExtSuperblock(f *testing.F) {
	if d := smallDisk(f); d != nil {
		f.Add(d[1024+1024 : 1024+2048])
	}
	sb := make([]byte, 1024)
	binary.LittleEndian.PutUint16(sb[56:], 0xef53)
	f.Add(sb)
	f.Fuzz(func(t *testing.T, sb []byte) {
		if len(sb) > 1024 {
			sb = sb[:1024]
		}
		extSignature(append(sb, make([]byte, 1024-len(sb))...))
		img := &sparseImage{head: append(make([]byte, 1024), sb...), size: 1 << 30}
		br := newBoundedReader(context.Background(), img, img.size, 2<<20)
		e, err := openExt(br, 0, img.size)
		if err != nil {
			return
		}
		_, _, _ = e.resolve("/etc/os-release", true, 64)
		if br.used() > 2<<20 {
			t.Fatalf("read %d bytes", br.used())
		}
	})
}

// FuzzExtFilesystem mutates a whole small ext2 filesystem and reads the
// root's files as detection does.
func FuzzExtFilesystem(f *testing.F) {
	d := smallDisk(f)
	if d == nil {
		d = make([]byte, 4096)
	}
	f.Add(d[1024:])
	lim := Limits{Bytes: 4 << 20, Timeout: 5 * time.Second, FileBytes: 4096, DirEntries: 64}
	f.Fuzz(func(t *testing.T, fsys []byte) {
		rep, err := Detect(context.Background(), bytes.NewReader(fsys), int64(len(fsys)), lim)
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, lim)
	})
}

func FuzzOSRelease(f *testing.F) {
	f.Add([]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"))
	f.Add([]byte("NAME='Fedora Linux'\nVERSION=\"39 (Cloud \\\"Edition\\\")\" # comment\nID=fedora\n"))
	f.Add([]byte("ID=\"unterminated\nX=a\\ b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kv := ParseOSRelease(data)
		if len(kv) > 256 {
			t.Fatalf("%d keys", len(kv))
		}
		for k, v := range kv {
			if !isEnvName(k) || len(v) > len(data) {
				t.Fatalf("%q=%q", k, v)
			}
		}
	})
}

func FuzzPasswd(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\n"), uint64(1000))
	f.Add([]byte("+::::::\n-bob\n# comment\nx:x:9999999999:0::/:/bin/sh\n"), uint64(500))
	f.Fuzz(func(t *testing.T, data []byte, uidMin uint64) {
		users := LoginUsers(ParsePasswd(data), uidMin)
		seen := map[string]bool{}
		for _, u := range users {
			if u == "" || seen[u] || strings.ContainsAny(u, ": \t\n") {
				t.Fatalf("user %q in %q", u, users)
			}
			seen[u] = true
		}
		ParseUIDMin(data)
	})
}

func FuzzCompareVersions(f *testing.F) {
	f.Add("6.1.0-18-amd64", "6.1.0-9-amd64")
	f.Add("5.10.0-0.bpo.3", "5.10.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		if CompareVersions(a, b) != -CompareVersions(b, a) {
			t.Fatalf("not antisymmetric: %q %q", a, b)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("%q != itself", a)
		}
	})
}

// TestFuzzSeedIsARealDisk: the fuzzers start from a disk detection reads
// fully, so mutations explore the ext reader, not only its first checks.
func TestFuzzSeedIsARealDisk(t *testing.T) {
	d := smallDisk(t)
	if d == nil {
		t.Skip("mke2fs not found")
	}
	rep, err := Detect(context.Background(), bytes.NewReader(d), int64(len(d)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{OSFamily: "linux", RootPartition: "1", PartitionTable: "msdos", OS: "debian",
		Description: "Debian GNU/Linux 12 (bookworm)", Kernel: "6.1.0-18-amd64", Users: "root alice"}
	for k, v := range want {
		if rep.Properties[k] != v {
			t.Errorf("%s = %q, want %q (notes %q)", k, rep.Properties[k], v, rep.Notes)
		}
	}
}
