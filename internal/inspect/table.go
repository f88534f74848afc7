package inspect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Bounds on partition tables: real ones have 4 MBR entries, a few logical
// partitions and 128 GPT entries of 128 bytes.
const (
	maxGPTEntries   = 1024
	maxGPTEntrySize = 1024
	maxLogical      = 64
	sectorSize      = 512
)

// readTable fills the report's partition table and partitions. Without a
// table, a filesystem on the whole disk is partition 0.
func (d *detector) readTable() {
	rep := d.rep
	if rep.Size < sectorSize {
		rep.TableEvidence = fmt.Sprintf("none: the image is %d bytes, smaller than one sector", rep.Size)
		d.wholeDisk()
		return
	}
	s0 := make([]byte, sectorSize)
	if err := d.r.readFull(s0, 0); err != nil {
		d.readErr("the first sector", err)
		return
	}
	mbrSig := s0[510] == 0x55 && s0[511] == 0xaa
	if mbrSig && hasProtectiveEntry(s0) {
		// A GPT disk: its MBR only protects the GPT, so when the GPT
		// cannot be read there is no partition table to trust.
		if !d.readGPT() && !d.stopped() {
			rep.TableEvidence = "none usable: a protective MBR (type 0xee) announces a GPT that cannot be read"
		}
		return
	}
	if mbrSig {
		if fs := bootSectorFS(s0); fs != "" {
			article := "a "
			if fs == "NTFS" {
				article = "an "
			}
			rep.TableEvidence = "none: the first sector is the boot sector of " + article + fs + " filesystem, not a partition table"
			d.wholeDisk()
			return
		}
		if d.readMBR() {
			return
		}
	} else {
		rep.TableEvidence = "none: no MBR signature (0x55AA at byte 510)"
	}
	d.wholeDisk()
}

// wholeDisk looks for a filesystem that starts at byte 0 of the image.
func (d *detector) wholeDisk() {
	p := Partition{Number: 0, Primary: false, Start: 0, Size: d.rep.Size}
	d.guard("the whole disk: filesystem signature", func() { d.probe(&p) })
	if p.Filesystem != "" {
		d.rep.Partitions = append(d.rep.Partitions, p)
	}
}

func hasProtectiveEntry(s0 []byte) bool {
	for i := 0; i < 4; i++ {
		if s0[446+16*i+4] == byte(mbr.GPTProtective) {
			return true
		}
	}
	return false
}

// readGPT reads a GUID partition table; false if there is none that can be
// used.
func (d *detector) readGPT() bool {
	rep := d.rep
	for _, lss := range []int64{512, 4096} {
		if rep.Size < 2*lss {
			continue
		}
		hdr := make([]byte, lss)
		if err := d.r.readFull(hdr, lss); err != nil {
			d.readErr("the GPT header", err)
			return false
		}
		if string(hdr[:8]) != "EFI PART" {
			continue
		}
		where := fmt.Sprintf("GPT header at byte %d", lss)
		if damaged, err := d.checkGPT(hdr, lss); err != nil {
			if d.stopped() {
				return false
			}
			if !damaged {
				rep.note("a GPT header was found at byte %d but cannot be used: %v", lss, err)
				return false
			}
			// go-diskfs reads the backup header in the last sector when
			// the primary is damaged: check that one first.
			last := (rep.Size/lss - 1) * lss
			bak := make([]byte, lss)
			if rerr := d.r.readFull(bak, last); rerr != nil || string(bak[:8]) != "EFI PART" {
				rep.note("the GPT header at byte %d is damaged (%v) and there is no backup header in the last sector", lss, err)
				return false
			}
			if _, berr := d.checkGPT(bak, lss); berr != nil {
				rep.note("the GPT header at byte %d is damaged (%v), and so is the backup in the last sector (%v)", lss, err, berr)
				return false
			}
			where = fmt.Sprintf("backup GPT header at byte %d (the primary is damaged: %v)", last, err)
		}
		var table *gpt.Table
		var rerr error
		d.guard("the GPT", func() { table, rerr = gpt.Read(newDiskfsBackend(d.r), int(lss), int(lss)) })
		if table == nil || rerr != nil {
			if rerr != nil {
				rep.note("the GPT cannot be read: %v", rerr)
			}
			return false
		}
		rep.PartitionTable = TableGPT
		rep.TableEvidence = where + " (signature \"EFI PART\")"
		for _, p := range table.Partitions {
			if p == nil || p.Type == gpt.Unused {
				continue
			}
			part := Partition{
				Number: p.Index, Primary: true, Start: int64(p.Start) * lss, Size: int64(p.Size),
				Type: string(p.Type), TypeName: gptTypeName(p.Type), Name: p.Name,
			}
			if p.End < p.Start {
				rep.note("GPT entry %d ends (sector %d) before it starts (sector %d); ignored", p.Index, p.End, p.Start)
				continue
			}
			d.checkBounds(&part)
			rep.Partitions = append(rep.Partitions, part)
		}
		return true
	}
	return false
}

// checkGPT checks a GPT header's CRC and sizes, and its partition entry
// array's CRC, before go-diskfs reads them: it sizes its buffers from these
// fields. damaged means a checksum failed, which makes go-diskfs turn to
// the backup header; any other error means go-diskfs must not see the
// table.
func (d *detector) checkGPT(hdr []byte, lss int64) (damaged bool, err error) {
	le32 := func(o int) uint32 { return binary.LittleEndian.Uint32(hdr[o:]) }
	if hsize := le32(12); hsize != 92 {
		return true, fmt.Errorf("header size %d, not 92", hsize)
	}
	if !bytes.Equal(hdr[8:12], []byte{0, 0, 1, 0}) || !bytes.Equal(hdr[20:24], []byte{0, 0, 0, 0}) {
		return true, errors.New("unknown header revision or non-zero reserved bytes")
	}
	h := append([]byte(nil), hdr[:92]...)
	binary.LittleEndian.PutUint32(h[16:], 0)
	if crc32.ChecksumIEEE(h) != le32(16) {
		return true, errors.New("header checksum mismatch")
	}
	count, esize := le32(80), le32(84)
	if count == 0 || count > maxGPTEntries || esize < 128 || esize > maxGPTEntrySize || esize%8 != 0 {
		return false, fmt.Errorf("implausible partition entry array: %d entries of %d bytes", count, esize)
	}
	first := binary.LittleEndian.Uint64(hdr[72:])
	if first < 1 || first >= uint64(d.rep.Size/lss) {
		return false, fmt.Errorf("partition entries at sector %d, outside the image", first)
	}
	entries := make([]byte, int64(count)*int64(esize))
	if err := d.r.readFull(entries, int64(first)*lss); err != nil {
		return false, fmt.Errorf("partition entries: %w", err)
	}
	if crc32.ChecksumIEEE(entries) != le32(88) {
		return true, errors.New("partition entry array checksum mismatch")
	}
	return false, nil
}

// readMBR reads an MBR (DOS) partition table with its logical partitions.
func (d *detector) readMBR() bool {
	rep := d.rep
	var table *mbr.Table
	var err error
	d.guard("the MBR", func() { table, err = mbr.Read(newDiskfsBackend(d.r), sectorSize, sectorSize) })
	if table == nil || err != nil {
		if err != nil {
			rep.TableEvidence = "none: the MBR signature is there, but " + err.Error()
		}
		return false
	}
	var parts []Partition
	var extended *Partition
	for _, p := range table.Partitions {
		if p == nil || p.Type == mbr.Empty || p.Size == 0 {
			continue
		}
		part := Partition{
			Number: p.Index, Primary: true, Start: int64(p.Start) * sectorSize, Size: int64(p.Size) * sectorSize,
			Type: fmt.Sprintf("0x%02x", byte(p.Type)), TypeName: mbrTypeName(p.Type), Bootable: p.Bootable,
		}
		if isExtended(p.Type) {
			part.Extended = true
			if extended == nil {
				e := part
				extended = &e
			} else {
				rep.note("partition %d is a second extended partition; its logical partitions are not read", p.Index)
			}
		}
		d.checkBounds(&part)
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		rep.TableEvidence = "none: the MBR signature is there, but all four entries are empty"
		return false
	}
	rep.PartitionTable = TableMSDOS
	rep.TableEvidence = "MBR signature 0x55AA at byte 510"
	rep.Partitions = append(rep.Partitions, parts...)
	if extended != nil {
		d.guard("the logical partitions", func() { d.readLogical(*extended) })
	}
	return true
}

// readLogical follows the chain of extended boot records in the extended
// partition ext: logical partitions are numbered from 5.
func (d *detector) readLogical(ext Partition) {
	base := ext.Start / sectorSize
	cur := base
	seen := map[int64]bool{}
	ebr := make([]byte, sectorSize)
	for n := 5; ; n++ {
		if n-5 >= maxLogical {
			d.rep.note("more than %d logical partitions; the rest are not read", maxLogical)
			return
		}
		if seen[cur] {
			d.rep.note("the chain of logical partitions loops back to sector %d; stopped", cur)
			return
		}
		seen[cur] = true
		if err := d.r.readFull(ebr, cur*sectorSize); err != nil {
			d.readErr(fmt.Sprintf("the extended boot record of partition %d", n), err)
			return
		}
		if ebr[510] != 0x55 || ebr[511] != 0xaa {
			if n > 5 || !bytes.Equal(ebr, make([]byte, sectorSize)) {
				d.rep.note("the extended boot record at sector %d has no signature; logical partitions from %d on are not read", cur, n)
			}
			return
		}
		e1, e2 := ebr[446:462], ebr[462:478]
		typ, start, size := e1[4], binary.LittleEndian.Uint32(e1[8:]), binary.LittleEndian.Uint32(e1[12:])
		if typ != 0 && size != 0 {
			part := Partition{
				Number: n, Primary: false, Start: (cur + int64(start)) * sectorSize, Size: int64(size) * sectorSize,
				Type: fmt.Sprintf("0x%02x", typ), TypeName: mbrTypeName(mbr.Type(typ)), Bootable: e1[0] == 0x80,
			}
			d.checkBounds(&part)
			d.rep.Partitions = append(d.rep.Partitions, part)
		}
		next, nsize := binary.LittleEndian.Uint32(e2[8:]), binary.LittleEndian.Uint32(e2[12:])
		if e2[4] == 0 || nsize == 0 {
			return
		}
		cur = base + int64(next)
	}
}

// checkBounds notes a partition that does not fit in the image.
func (d *detector) checkBounds(p *Partition) {
	switch {
	case p.Start >= d.rep.Size:
		d.rep.note("%s starts at byte %d, beyond the end of the %d-byte image (truncated?)", p.Where(), p.Start, d.rep.Size)
	case p.Start+p.Size > d.rep.Size:
		d.rep.note("%s ends at byte %d, beyond the end of the %d-byte image (truncated?)", p.Where(), p.Start+p.Size, d.rep.Size)
	}
}

func isExtended(t mbr.Type) bool {
	return t == mbr.ExtendedCHS || t == mbr.ExtendedLBA || t == mbr.LinuxExtended
}

var mbrTypeNames = map[mbr.Type]string{
	0x01: "FAT12", 0x04: "FAT16", 0x05: "Extended", 0x06: "FAT16", 0x07: "NTFS/exFAT", 0x0b: "FAT32", 0x0c: "FAT32 (LBA)",
	0x0e: "FAT16 (LBA)", 0x0f: "Extended (LBA)", 0x27: "Windows recovery", 0x42: "Windows dynamic", 0x82: "Linux swap",
	0x83: "Linux", 0x85: "Linux extended", 0x8e: "Linux LVM", 0xa5: "FreeBSD", 0xa6: "OpenBSD", 0xa9: "NetBSD",
	0xee: "GPT protective", 0xef: "EFI System", 0xfd: "Linux RAID",
}

func mbrTypeName(t mbr.Type) string {
	if n, ok := mbrTypeNames[t]; ok {
		return n
	}
	return "unknown"
}

// GPT partition types this package names; NetBSD and OpenBSD are not in
// go-diskfs's list.
const (
	gptNetBSDFFS   gpt.Type = "49F48D5A-B10E-11DC-B99B-0019D1879648"
	gptOpenBSDData gpt.Type = "824CC7A0-36A8-11E3-890A-952519AD3F61"
)

var gptTypeNames = map[gpt.Type]string{
	gpt.EFISystemPartition: "EFI System", gpt.BIOSBoot: "BIOS boot", gpt.MicrosoftBasicData: "Microsoft basic data",
	gpt.MicrosoftReserved: "Microsoft reserved", gpt.MicrosoftWindowsRecovery: "Windows recovery",
	gpt.LinuxFilesystem: "Linux filesystem", gpt.LinuxRootX86_64: "Linux root (x86-64)", gpt.LinuxRootX86: "Linux root (x86)",
	gpt.LinuxRootArm64: "Linux root (ARM64)", gpt.LinuxSwap: "Linux swap", gpt.LinuxLVM: "Linux LVM", gpt.LinuxRAID: "Linux RAID",
	gpt.LinuxHome: "Linux /home", gpt.LinuxExtendedBoot: "Linux extended boot", gpt.FreeBSDBoot: "FreeBSD boot",
	gpt.FreeBSDUFS: "FreeBSD UFS", gpt.FreeBSDSwap: "FreeBSD swap", gpt.FreeBSDZFS: "FreeBSD ZFS",
	gptNetBSDFFS: "NetBSD FFS", gptOpenBSDData: "OpenBSD data",
}

func gptTypeName(t gpt.Type) string {
	if n, ok := gptTypeNames[gpt.Type(strings.ToUpper(string(t)))]; ok {
		return n
	}
	return "unknown"
}

// bsdFamily is the OSFAMILY a BSD partition type announces, as snf-image's
// own detection reads it (MBR types a5, a6, a9; GPT type GUIDs).
func bsdFamily(p Partition) string {
	switch strings.ToUpper(p.Type) {
	case "0XA5", string(gpt.FreeBSDUFS):
		return "freebsd"
	case "0XA6", string(gptOpenBSDData):
		return "openbsd"
	case "0XA9", string(gptNetBSDFFS):
		return "netbsd"
	}
	return ""
}
