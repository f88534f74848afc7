package inspect_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/imagesync/imagesync/internal/inspect"
)

func TestCheck(t *testing.T) {
	gpt := &inspect.Report{
		PartitionTable: "gpt", Complete: true,
		Partitions: []inspect.Partition{
			{Number: 1, Primary: true, Filesystem: "vfat", Evidence: "FAT32 boot sector"},
			{Number: 2, Primary: true, Filesystem: "ext4", Evidence: "ext4 superblock"},
			{Number: 3, Primary: true, Filesystem: ""},
		},
		Properties: map[string]string{"OSFAMILY": "linux", "ROOT_PARTITION": "2"},
		Evidence:   map[string]string{"OSFAMILY": "partition 2 ext4: a Linux root", "ROOT_PARTITION": "partition 2 ext4: the Linux root filesystem"},
	}
	msdos := &inspect.Report{
		PartitionTable: "msdos", Complete: true,
		Partitions: []inspect.Partition{
			{Number: 1, Primary: true, Filesystem: "ntfs"},
			{Number: 2, Primary: true, Extended: true},
			{Number: 5, Primary: false, Filesystem: "ext4"},
		},
		Properties: map[string]string{}, Evidence: map[string]string{},
	}
	whole := &inspect.Report{Complete: true, Partitions: []inspect.Partition{{Number: 0, Filesystem: "ext4"}},
		Properties: map[string]string{"OSFAMILY": "linux"}, Evidence: map[string]string{}}
	empty := &inspect.Report{Complete: true, TableEvidence: "none", Partitions: []inspect.Partition{}, Properties: map[string]string{},
		Evidence: map[string]string{}, Notes: []string{"no Linux root (an ext filesystem with /etc), NTFS filesystem or BSD partition found"}}

	type want struct {
		prop  string
		error bool
		msg   string // substring
		fix   string // substring
	}
	cases := []struct {
		name         string
		family, root string
		rep          *inspect.Report
		want         []want
	}{
		{"as detected", "linux", "2", gpt, nil},
		{"linux on an unknown filesystem (LVM, jfs…) is not contradicted", "linux", "3", gpt, nil},
		{"nothing set, nothing detected", "", "", empty, []want{{"OSFAMILY", false,
			"snf-image needs OSFAMILY and ROOT_PARTITION, which are not set and were not detected (no partition table or filesystem found; no Linux root",
			"set OSFAMILY and ROOT_PARTITION"}}},
		{"not inspected", "linux", "", nil, []want{{"ROOT_PARTITION", false, "(the disk was not inspected)", "set ROOT_PARTITION"}}},
		{"a missing partition", "linux", "4", gpt, []want{{"ROOT_PARTITION", true,
			"ROOT_PARTITION=4 names no partition: the gpt table has partitions 1 (vfat), 2 (ext4), 3", "(detected: 2)"}}},
		{"the EFI System partition as root", "linux", "1", gpt, []want{{"OSFAMILY", true,
			"OSFAMILY=linux, but ROOT_PARTITION=1 holds vfat (FAT32 boot sector), which snf-image does not mount as a linux root",
			"set ROOT_PARTITION to 2 (detected: partition 2 ext4: the Linux root filesystem)"}}},
		{"windows on a Linux root", "windows", "2", gpt, []want{{"OSFAMILY", true, "OSFAMILY=windows, but ROOT_PARTITION=2 holds ext4",
			"set OSFAMILY to linux (detected: partition 2 ext4: a Linux root)"}}},
		{"a logical partition", "linux", "5", msdos, []want{{"ROOT_PARTITION", true, "names a logical partition", "primary partition"}}},
		{"the extended partition", "linux", "2", msdos, []want{{"ROOT_PARTITION", true, "names the extended partition", ""}}},
		{"not a number", "linux", "sda1", gpt, []want{{"ROOT_PARTITION", true, `ROOT_PARTITION "sda1" is not a partition number`, "(detected: 2)"}}},
		{"an unknown family", "Linux", "2", gpt, []want{{"OSFAMILY", false, `OSFAMILY "Linux" is not one snf-image knows`, "lowercase"}}},
		{"no partition table", "linux", "1", whole, []want{{"ROOT_PARTITION", true, "the image has no partition table: ext4 fills the whole disk", "extdump"}}},
		{"windows-legacy on NTFS", "windows-legacy", "1", msdos, nil},
		{"table not readable: nothing to check against", "linux", "7", empty, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := inspect.Check(tc.family, tc.root, tc.rep)
			if assert.Len(t, got, len(tc.want), "%+v", got) {
				for i, w := range tc.want {
					assert.Equal(t, w.prop, got[i].Property)
					assert.Equal(t, w.error, got[i].Error)
					assert.Contains(t, got[i].Msg, w.msg)
					assert.Contains(t, got[i].Fix, w.fix)
				}
			}
		})
	}
}
