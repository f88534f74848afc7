package inspect

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Where filesystems keep their signatures, relative to their start. One
// probe reads three small regions of a partition: its first 4 KiB (boot
// sectors, the ext and XFS superblocks, the swap signature), 2 KiB at 8 KiB
// (UFS1) and 2 KiB at 64 KiB (btrfs, UFS2).
const (
	probeHead  = 4096
	probeUFS1  = 8192
	probe64K   = 65536
	probeSpan  = 2048
	extSBOff   = 1024
	ufsMagicAt = 1372
)

// regions are the bytes a probe read; a region past the end of the
// partition or the image is nil.
type regions struct {
	head, ufs1, at64k []byte
}

// probe recognises the filesystem of p from its signature.
func (d *detector) probe(p *Partition) {
	var rg regions
	read := func(off, n int64) []byte {
		if off+n > p.Size {
			return nil
		}
		b := make([]byte, n)
		if err := d.r.readFull(b, p.Start+off); err != nil {
			d.readErr(p.Where(), err)
			return nil
		}
		return b
	}
	if rg.head = read(0, probeHead); rg.head == nil {
		if !d.stopped() && p.Start < d.rep.Size {
			p.Evidence = "too small or cut short to hold a filesystem"
		}
		return
	}
	if p.Filesystem, p.Evidence = identify(rg); p.Filesystem != "" || d.stopped() {
		return
	}
	// The signatures further in: read only when the first 4 KiB said nothing.
	rg.ufs1 = read(probeUFS1, probeSpan)
	rg.at64k = read(probe64K, probeSpan)
	p.Filesystem, p.Evidence = identify(rg)
}

// identify names the filesystem whose signature the regions hold, with the
// evidence. Signatures at byte 0 (boot sectors, XFS) are tried before the
// ext superblock at 1024, since the tools that write them leave an older
// ext superblock in place, while mke2fs clears the first sectors.
func identify(rg regions) (fs, evidence string) {
	h := rg.head
	if len(h) < probeHead {
		return "", "too small to hold a filesystem"
	}
	if string(h[:4]) == "XFSB" {
		return FSXFS, `XFS superblock magic "XFSB" at byte 0`
	}
	if name := bootSectorFS(h[:512]); name != "" && h[510] == 0x55 && h[511] == 0xaa {
		if name == "NTFS" {
			return FSNTFS, `NTFS boot sector (OEM id "NTFS    " at byte 3)`
		}
		return FSVFAT, name + " boot sector (BIOS parameter block, type string at byte " + fatTypeOffset(h) + ")"
	}
	if fs, ev, ok := extSignature(h[extSBOff : extSBOff+1024]); ok {
		return fs, ev
	}
	if b := rg.at64k; b != nil && string(b[64:72]) == "_BHRfS_M" {
		return FSBtrfs, `btrfs superblock magic "_BHRfS_M" at byte 65600`
	}
	for _, c := range []struct {
		b    []byte
		base int
	}{{h, 0}, {rg.ufs1, probeUFS1}, {rg.at64k, probe64K}} {
		if c.b == nil {
			continue
		}
		le := binary.LittleEndian.Uint32(c.b[ufsMagicAt:])
		be := binary.BigEndian.Uint32(c.b[ufsMagicAt:])
		for _, m := range []struct {
			magic uint32
			name  string
		}{{0x00011954, "UFS1"}, {0x19540119, "UFS2"}} {
			if le == m.magic || be == m.magic {
				return FSUFS, fmt.Sprintf("%s superblock magic 0x%08X at byte %d", m.name, m.magic, c.base+ufsMagicAt)
			}
		}
	}
	if sig := string(h[4086:4096]); sig == "SWAPSPACE2" || sig == "SWAP-SPACE" {
		return FSSwap, fmt.Sprintf("Linux swap signature %q at byte 4086", sig)
	}
	// Not filesystems, but worth saying what the partition holds.
	if string(h[512:520]) == "LABELONE" && string(h[536:544]) == "LVM2 001" {
		return "", "an LVM physical volume (label \"LABELONE\" at byte 512): its logical volumes are not read"
	}
	if string(h[:6]) == "LUKS\xba\xbe" {
		return "", "a LUKS encrypted volume: not readable"
	}
	return "", "no known filesystem signature"
}

// bootSectorFS recognises an NTFS or FAT boot sector (a BIOS parameter
// block with a plausible geometry), or returns "".
func bootSectorFS(s []byte) string {
	if len(s) < 512 {
		return ""
	}
	if string(s[3:11]) == "NTFS    " {
		return "NTFS"
	}
	bps := binary.LittleEndian.Uint16(s[11:])
	spc := s[13]
	reserved := binary.LittleEndian.Uint16(s[14:])
	fats := s[16]
	if (bps != 512 && bps != 1024 && bps != 2048 && bps != 4096) || spc == 0 || spc&(spc-1) != 0 ||
		reserved == 0 || (fats != 1 && fats != 2) {
		return ""
	}
	switch {
	case string(s[82:87]) == "FAT32":
		return "FAT32"
	case strings.HasPrefix(string(s[54:62]), "FAT"):
		if t := strings.TrimSpace(string(s[54:62])); t == "FAT12" || t == "FAT16" {
			return t
		}
		return "FAT"
	}
	return ""
}

func fatTypeOffset(h []byte) string {
	if string(h[82:87]) == "FAT32" {
		return "82"
	}
	return "54"
}

// ext superblock features (fs/ext4/ext4.h) that matter here.
const (
	extCompatHasJournal    = 0x4
	extIncompatFiletype    = 0x2
	extIncompatRecover     = 0x4
	extIncompatJournalDev  = 0x8
	extIncompatMetaBG      = 0x10
	extIncompatExtents     = 0x40
	extIncompat64Bit       = 0x80
	extIncompatInlineData  = 0x8000
	extIncompatEncrypt     = 0x10000
	extROCompatSparseSuper = 0x1
	extROCompatLargeFile   = 0x2
	extROCompatBtreeDir    = 0x4
)

var extFeatureNames = []struct {
	field int // 0 compat, 1 incompat, 2 ro_compat
	bit   uint32
	name  string
}{
	{0, 0x4, "has_journal"}, {1, 0x40, "extent"}, {1, 0x80, "64bit"}, {1, 0x200, "flex_bg"},
	{1, 0x8000, "inline_data"}, {1, 0x10000, "encrypt"}, {2, 0x8, "huge_file"}, {2, 0x400, "metadata_csum"},
}

// extSignature recognises an ext2/3/4 superblock (the 1024 bytes at byte
// 1024) and tells the three apart as blkid does: ext4 when it uses a
// feature ext3 lacks, ext3 when it has a journal, else ext2.
func extSignature(sb []byte) (fs, evidence string, ok bool) {
	if len(sb) < 1024 || binary.LittleEndian.Uint16(sb[56:]) != 0xef53 {
		return "", "", false
	}
	logBlock := binary.LittleEndian.Uint32(sb[24:])
	if logBlock > 6 || binary.LittleEndian.Uint32(sb[32:]) == 0 || binary.LittleEndian.Uint32(sb[40:]) == 0 {
		return "", "an ext superblock magic 0xEF53 at byte 1080, with an impossible geometry", false
	}
	compat := binary.LittleEndian.Uint32(sb[92:])
	incompat := binary.LittleEndian.Uint32(sb[96:])
	ro := binary.LittleEndian.Uint32(sb[100:])
	if incompat&extIncompatJournalDev != 0 {
		return "", "an external ext3/ext4 journal (magic 0xEF53 at byte 1080)", false
	}
	fs = FSExt2
	switch {
	case incompat&^(extIncompatFiletype|extIncompatRecover|extIncompatMetaBG) != 0,
		ro&^(extROCompatSparseSuper|extROCompatLargeFile|extROCompatBtreeDir) != 0:
		fs = FSExt4
	case compat&extCompatHasJournal != 0:
		fs = FSExt3
	}
	var feats []string
	for _, f := range extFeatureNames {
		if [3]uint32{compat, incompat, ro}[f.field]&f.bit != 0 {
			feats = append(feats, f.name)
		}
	}
	evidence = fs + " superblock (magic 0xEF53 at byte 1080"
	if len(feats) > 0 {
		evidence += "; features " + strings.Join(feats, ", ")
	}
	return fs, evidence + ")", true
}
