// Package inspect reads a disk image, without mounting it, and finds what
// snf-image needs to deploy it: the partition table, the root partition and
// the OS family, plus what snf-image-creator records (OS, description,
// kernel, users).
//
// Everything goes through an io.ReaderAt and is bounded: a byte budget, a
// deadline, a cap on each file read and on directory entries, symlinks and
// tree depth, and a recover around every parser, so a corrupt or hostile
// image yields an incomplete Report, never a hang, a crash or an exhausted
// daemon.
//
// The partition tables are read with github.com/diskfs/go-diskfs (after a
// check of the GPT header's sizes, which it would otherwise allocate as
// given). Filesystem signatures and the ext2/3/4 reader are our own:
// go-diskfs v1.9.4's ext4 reader refuses ext2, ext3 and ext4 without
// metadata_csum ("invalid checksum type 0"), which many deployed images are,
// and sizes its buffers from on-disk values.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Property names, as snf-image and snf-image-creator spell them.
const (
	OSFamily       = "OSFAMILY"
	RootPartition  = "ROOT_PARTITION"
	PartitionTable = "PARTITION_TABLE"
	OS             = "OS"
	Description    = "DESCRIPTION"
	Kernel         = "KERNEL"
	Users          = "USERS"
)

// PropertyOrder is the order properties are shown in.
var PropertyOrder = []string{OSFamily, RootPartition, PartitionTable, OS, Description, Kernel, Users}

// Partition table types, as snf-image-creator's PARTITION_TABLE names them
// (libguestfs part_get_parttype).
const (
	TableMSDOS = "msdos"
	TableGPT   = "gpt"
)

// Filesystem types this package recognises.
const (
	FSExt2  = "ext2"
	FSExt3  = "ext3"
	FSExt4  = "ext4"
	FSXFS   = "xfs"
	FSBtrfs = "btrfs"
	FSNTFS  = "ntfs"
	FSVFAT  = "vfat"
	FSUFS   = "ufs"
	FSSwap  = "swap"
)

// Version changes whenever detection could give a different answer for the
// same bytes; cached reports of another version are not used.
const Version = 1

// Limits bound one detection. Zero fields take the defaults.
type Limits struct {
	// Bytes is the most that is read from the image in all.
	Bytes int64
	// Timeout is how long detection may take.
	Timeout time.Duration
	// FileBytes is the most read of one file (os-release, passwd,
	// login.defs); a longer file is read up to this size.
	FileBytes int64
	// DirEntries is the most entries read from one directory.
	DirEntries int
}

// DefaultLimits: a few MiB are read from a typical image; 64 MiB and 30
// seconds leave room for slow disks and large directories while bounding a
// hostile image.
var DefaultLimits = Limits{Bytes: 64 << 20, Timeout: 30 * time.Second, FileBytes: 256 << 10, DirEntries: 4096}

func (l Limits) withDefaults() Limits {
	if l.Bytes <= 0 {
		l.Bytes = DefaultLimits.Bytes
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultLimits.Timeout
	}
	if l.FileBytes <= 0 {
		l.FileBytes = DefaultLimits.FileBytes
	}
	if l.DirEntries <= 0 {
		l.DirEntries = DefaultLimits.DirEntries
	}
	return l
}

// Report is what was detected in one image, and the evidence.
type Report struct {
	Version int   `json:"version"`
	Size    int64 `json:"size"`
	// PartitionTable is "msdos", "gpt", or "" when there is none (or it
	// could not be read).
	PartitionTable string `json:"partition_table"`
	// TableEvidence says how the table was recognised, or why there is none.
	TableEvidence string `json:"table_evidence"`
	// Partitions in table order: primary (MBR 1-4, every GPT entry) then
	// logical (MBR 5 on). Number 0 is a filesystem on the whole disk, when
	// there is no partition table.
	Partitions []Partition `json:"partitions"`
	// Properties are what was detected, by snf-image property name.
	Properties map[string]string `json:"properties"`
	// Evidence says, for each property, where it was found: "partition 1
	// ext4 /etc/os-release".
	Evidence map[string]string `json:"evidence"`
	// Notes are what could not be read or decided, and why.
	Notes []string `json:"notes"`
	// Complete is false when detection stopped early (budget, deadline, a
	// read error): then the absence of a property proves nothing.
	Complete bool `json:"complete"`
	// TimedOut is set when the deadline stopped detection: another try,
	// on a less busy machine, may get further.
	TimedOut  bool    `json:"timed_out,omitempty"`
	BytesRead int64   `json:"bytes_read"`
	Seconds   float64 `json:"seconds"`
}

// Partition is one entry of the partition table (or the whole disk).
type Partition struct {
	Number int `json:"number"`
	// Primary is true for MBR primary partitions and every GPT partition:
	// what snf-image's ROOT_PARTITION may name.
	Primary  bool   `json:"primary"`
	Start    int64  `json:"start"` // bytes from the start of the image
	Size     int64  `json:"size"`  // bytes
	Type     string `json:"type"`  // "0x83", or the GPT type GUID
	TypeName string `json:"type_name"`
	Bootable bool   `json:"bootable,omitempty"`
	Name     string `json:"name,omitempty"` // GPT partition name
	// Extended marks an MBR extended partition: a container of logical
	// partitions, never a filesystem.
	Extended bool `json:"extended,omitempty"`
	// Filesystem is the recognised filesystem type, "" if none.
	Filesystem string `json:"filesystem"`
	// Evidence is the signature that gave Filesystem, or why none was found.
	Evidence string `json:"evidence"`
}

// Where names the partition in messages: "partition 2", or "the whole disk".
func (p Partition) Where() string {
	if p.Number == 0 {
		return "the whole disk"
	}
	return fmt.Sprintf("partition %d", p.Number)
}

// Label names the partition and its filesystem at the start of evidence:
// "partition 1 ext4", or "whole-disk ntfs".
func (p Partition) Label() string {
	if p.Number == 0 {
		return "whole-disk " + p.Filesystem
	}
	return strings.TrimSpace(fmt.Sprintf("partition %d %s", p.Number, p.Filesystem))
}

// Partition returns the partition numbered n.
func (r *Report) Partition(n int) (Partition, bool) {
	for _, p := range r.Partitions {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

// Detect reads the image r of size bytes within lim and reports what it
// found. It never fails because of the image's content: what cannot be read
// is a note in the report. It returns an error only when ctx is done (the
// caller gave up; the partial report is then not worth keeping).
func Detect(ctx context.Context, r io.ReaderAt, size int64, lim Limits) (*Report, error) {
	lim = lim.withDefaults()
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	br := newBoundedReader(dctx, r, size, lim.Bytes)
	rep := &Report{Version: Version, Size: size, Partitions: []Partition{}, Properties: map[string]string{},
		Evidence: map[string]string{}, Notes: []string{}, Complete: true}
	d := &detector{r: br, rep: rep, lim: lim}
	d.guard("reading the image", d.run)
	rep.BytesRead = br.used()
	rep.Seconds = time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if dctx.Err() != nil {
		rep.TimedOut = true
		rep.incomplete("detection stopped after %s (limit)", lim.Timeout)
	}
	return rep, nil
}

// detector is one detection in progress.
type detector struct {
	r   *boundedReader
	rep *Report
	lim Limits
}

func (r *Report) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, n := range r.Notes {
		if n == msg {
			return
		}
	}
	r.Notes = append(r.Notes, msg)
}

func (r *Report) incomplete(format string, args ...any) {
	r.Complete = false
	r.note(format, args...)
}

// set records a detected property with its evidence; an empty value or
// one Plankton cannot store is left out, with a note.
func (r *Report) set(key, value, evidence string) {
	v, ok := cleanValue(value)
	if !ok {
		r.note("%s: %s gave a value that cannot be registered (%q); left out", key, evidence, clip(value, 60))
		return
	}
	r.Properties[key], r.Evidence[key] = v, evidence
}

// guard runs f, turning a panic (from a library or from our own parsers on
// input they did not expect) and a stopped read into notes.
func (d *detector) guard(what string, f func()) {
	defer func() {
		if p := recover(); p != nil {
			d.rep.incomplete("%s: stopped on malformed data (%v)", what, p)
		}
	}()
	f()
}

// readErr records a read failure; budget and deadline failures make the
// report incomplete.
func (d *detector) readErr(what string, err error) {
	switch {
	case errors.Is(err, errBudget):
		d.rep.incomplete("%s: stopped: more than the %d bytes detection may read", what, d.lim.Bytes)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		d.rep.incomplete("%s: stopped: out of time", what)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		d.rep.incomplete("%s: the image ends early (truncated?)", what)
	default:
		d.rep.incomplete("%s: %v", what, err)
	}
}

// stopped reports whether the budget or deadline ran out: nothing more can
// be read.
func (d *detector) stopped() bool { return d.r.stopped() }

func (d *detector) run() {
	d.readTable()
	if d.stopped() {
		return
	}
	for i := range d.rep.Partitions {
		p := &d.rep.Partitions[i]
		if p.Extended || p.Size <= 0 {
			continue
		}
		d.guard(p.Where()+": filesystem signature", func() { d.probe(p) })
		if d.stopped() {
			return
		}
	}
	d.findOS()
	if d.rep.PartitionTable != "" {
		d.rep.set(PartitionTable, d.rep.PartitionTable, "the "+tableName(d.rep.PartitionTable)+" ("+d.rep.TableEvidence+")")
	}
}

func tableName(t string) string {
	if t == TableGPT {
		return "GPT partition table"
	}
	return "MBR partition table"
}

// cleanValue makes a detected value storable: valid UTF-8 with control
// characters (C0 and C1) and surrounding space removed, at most 256
// characters.
func cleanValue(v string) (string, bool) {
	v = strings.ToValidUTF8(v, "")
	v = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, v)
	v = strings.TrimSpace(v)
	if v == "" {
		return "", false
	}
	if len([]rune(v)) > maxValue {
		return "", false
	}
	return v, true
}

// maxValue is Plankton's limit on a property value (image.MaxPropertyValue).
const maxValue = 256

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// SortedProperties lists the detected properties in PropertyOrder.
func (r *Report) SortedProperties() []string {
	keys := make([]string, 0, len(r.Properties))
	for k := range r.Properties {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		for i, o := range PropertyOrder {
			if o == k {
				return i
			}
		}
		return len(PropertyOrder)
	}
	sort.Slice(keys, func(i, j int) bool {
		if rank(keys[i]) != rank(keys[j]) {
			return rank(keys[i]) < rank(keys[j])
		}
		return keys[i] < keys[j]
	})
	return keys
}
