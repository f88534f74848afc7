package inspect

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Families are the OSFAMILY values snf-image knows.
var Families = []string{"linux", "windows", "windows-legacy", "freebsd", "netbsd", "openbsd"}

// familyFS are the root filesystems snf-image mounts for each family, of
// those this package recognises (snf-image-helper's check_if_root also
// accepts jfs, zfs and reiserfs, which are not recognised here and so never
// contradict anything).
var familyFS = map[string][]string{
	"linux":          {FSExt2, FSExt3, FSExt4, FSXFS, FSBtrfs},
	"windows":        {FSNTFS, FSVFAT},
	"windows-legacy": {FSNTFS, FSVFAT},
	"freebsd":        {FSUFS},
	"netbsd":         {FSUFS},
	"openbsd":        {FSUFS},
}

// Finding is one reason snf-image would fail to deploy an image.
type Finding struct {
	// Property is OSFAMILY or ROOT_PARTITION, the one to fix.
	Property string
	// Error findings contradict the disk itself and are always refused;
	// the others are warnings, refused only when the watch entry requires
	// deployable images.
	Error bool
	Msg   string
	// Fix says what to set (not where: the caller knows which metafile).
	Fix string
}

func (f Finding) String() string {
	if f.Fix == "" {
		return f.Msg
	}
	return f.Msg + "; " + f.Fix
}

// Check compares the OSFAMILY and ROOT_PARTITION a diskdump image is to be
// registered with ("" when unset) against its disk, as rep describes it (nil
// when it was not inspected): snf-image needs both, ROOT_PARTITION must name
// a primary partition, and the filesystem there must be one the family's
// root can use.
func Check(osFamily, rootPartition string, rep *Report) []Finding {
	var out []Finding
	detected := func(k string) string {
		if rep == nil {
			return ""
		}
		return rep.Properties[k]
	}
	if osFamily == "" || rootPartition == "" {
		var missing []string
		if osFamily == "" {
			missing = append(missing, OSFamily)
		}
		if rootPartition == "" {
			missing = append(missing, RootPartition)
		}
		out = append(out, Finding{
			Property: missing[0],
			Msg: fmt.Sprintf("not deployable as is: snf-image needs %s, %s not set and %s not detected (%s)",
				strings.Join(missing, " and "), plural(len(missing), "which is", "which are"), plural(len(missing), "was", "were"), rep.why()),
			Fix: "set " + strings.Join(missing, " and ") + " (" + hint(missing) + ")",
		})
	}
	if osFamily != "" && !slices.Contains(Families, osFamily) {
		out = append(out, Finding{Property: OSFamily,
			Msg: fmt.Sprintf("OSFAMILY %q is not one snf-image knows", osFamily),
			Fix: "set OSFAMILY to one of " + strings.Join(Families, ", ") + " (lowercase)"})
	}
	if rootPartition == "" {
		return out
	}
	n, err := strconv.Atoi(rootPartition)
	if err != nil || n < 1 {
		return append(out, Finding{Property: RootPartition, Error: true,
			Msg: fmt.Sprintf("ROOT_PARTITION %q is not a partition number", rootPartition),
			Fix: "set ROOT_PARTITION to the number of the primary partition that holds the root filesystem" + detectedHint(detected(RootPartition))})
	}
	if rep == nil {
		return out
	}
	if rep.PartitionTable == "" {
		if p, ok := rep.Partition(0); ok {
			out = append(out, Finding{Property: RootPartition, Error: true,
				Msg: fmt.Sprintf("ROOT_PARTITION=%d, but the image has no partition table: %s fills the whole disk", n, p.Filesystem),
				Fix: "a diskdump is a whole, partitioned disk: set disk-format to extdump or ntfsdump for a bare filesystem"})
		}
		return out // no table could be read: nothing to check against
	}
	p, ok := rep.Partition(n)
	switch {
	case !ok:
		return append(out, Finding{Property: RootPartition, Error: true,
			Msg: fmt.Sprintf("ROOT_PARTITION=%d names no partition: the %s table has %s", n, rep.PartitionTable, rep.partitionList()),
			Fix: "set ROOT_PARTITION to the partition that holds the root filesystem" + detectedHint(detected(RootPartition))})
	case p.Extended:
		return append(out, Finding{Property: RootPartition, Error: true,
			Msg: fmt.Sprintf("ROOT_PARTITION=%d names the extended partition, a container of logical partitions", n),
			Fix: "set ROOT_PARTITION to the primary partition that holds the root filesystem" + detectedHint(detected(RootPartition))})
	case !p.Primary:
		return append(out, Finding{Property: RootPartition, Error: true,
			Msg: fmt.Sprintf("ROOT_PARTITION=%d names a logical partition; snf-image supports only primary partitions (1-4 on an MBR disk)", n),
			Fix: "move the root filesystem to a primary partition, or set ROOT_PARTITION to the primary partition that holds it" + detectedHint(detected(RootPartition))})
	}
	if fss, known := familyFS[osFamily]; known && p.Filesystem != "" && !slices.Contains(fss, p.Filesystem) {
		fix := "set OSFAMILY to the family of the OS on partition " + strconv.Itoa(n)
		if d := detected(RootPartition); d != "" && d != rootPartition {
			fix = fmt.Sprintf("set ROOT_PARTITION to %s (detected: %s)", d, rep.Evidence[RootPartition])
		} else if fam := detected(OSFamily); fam != "" && fam != osFamily {
			fix = fmt.Sprintf("set OSFAMILY to %s (detected: %s)", fam, rep.Evidence[OSFamily])
		}
		out = append(out, Finding{Property: OSFamily, Error: true,
			Msg: fmt.Sprintf("OSFAMILY=%s, but ROOT_PARTITION=%d holds %s (%s), which snf-image does not mount as a %s root",
				osFamily, n, p.Filesystem, p.Evidence, osFamily),
			Fix: fix})
	}
	return out
}

func hint(missing []string) string {
	var h []string
	for _, m := range missing {
		switch m {
		case OSFamily:
			h = append(h, "OSFAMILY: one of "+strings.Join(Families, ", "))
		case RootPartition:
			h = append(h, "ROOT_PARTITION: the number of the root's primary partition")
		}
	}
	return strings.Join(h, "; ")
}

func plural(n int, one, more string) string {
	if n == 1 {
		return one
	}
	return more
}

func detectedHint(v string) string {
	if v == "" {
		return ""
	}
	return " (detected: " + v + ")"
}

// why says why detection found no OS, for a warning.
func (r *Report) why() string {
	if r == nil {
		return "the disk was not inspected"
	}
	var parts []string
	if !r.Complete {
		parts = append(parts, "detection stopped early")
	}
	switch {
	case r.PartitionTable != "":
		parts = append(parts, fmt.Sprintf("%s table with %s", r.PartitionTable, r.partitionList()))
	case len(r.Partitions) > 0:
		parts = append(parts, "no partition table; "+r.Partitions[0].Filesystem+" on the whole disk")
	default:
		parts = append(parts, "no partition table or filesystem found")
	}
	parts = append(parts, r.Notes...)
	if len(parts) > 4 {
		parts = parts[:4]
	}
	return strings.Join(parts, "; ")
}

// partitionList describes the partitions: "partitions 1 (vfat), 2 (ext4)".
func (r *Report) partitionList() string {
	var ps []string
	for _, p := range r.Partitions {
		if p.Number == 0 {
			continue
		}
		s := strconv.Itoa(p.Number)
		switch {
		case p.Extended:
			s += " (extended)"
		case p.Filesystem != "":
			s += " (" + p.Filesystem + ")"
		}
		ps = append(ps, s)
	}
	switch len(ps) {
	case 0:
		return "no partitions"
	case 1:
		return "partition " + ps[0]
	}
	return "partitions " + strings.Join(ps, ", ")
}
