package inspect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
)

// A small read-only ext2/3/4 reader: enough to look up a path, read the
// first bytes of a file and list a directory. It reads one block at a time
// and never sizes a buffer from an on-disk value it has not bounded.

// Bounds on what one filesystem walk may touch.
const (
	maxSymlinks    = 8    // symlinks followed in one path lookup
	maxComponents  = 64   // path components walked in one lookup
	maxDirBlocks   = 4096 // blocks of one directory
	maxExtentDepth = 5    // the kernel's limit
	maxNodeCache   = 16   // extent-tree and indirect blocks kept while reading a file
	maxSymlinkLen  = 4096
)

// extFS is an ext2/3/4 filesystem at byte start of the image.
type extFS struct {
	r     *boundedReader
	start int64 // byte offset in the image
	size  int64 // bytes available to it (the partition)

	bs             int64
	blocks         uint64
	inodes         uint32
	inodesPerGroup uint32
	blocksPerGroup uint32
	firstDataBlock uint32
	inodeSize      int64
	descSize       int64
	groups         uint64
	incompat       uint32
	roCompat       uint32
	firstMetaBG    uint32
	backupBGs      [2]uint32
	hasSparseSuper bool
	hasSparseSB2   bool
	is64           bool

	cache map[uint64][]byte // descriptor, extent and indirect blocks
}

// ext inode flags and modes.
const (
	extExtentsFlag    = 0x80000
	extInlineDataFlag = 0x10000000
	extEncryptFlag    = 0x800
	modeType          = 0xf000
	modeDir           = 0x4000
	modeRegular       = 0x8000
	modeSymlink       = 0xa000
)

// openExt reads and checks the superblock of the ext filesystem at start.
func openExt(r *boundedReader, start, size int64) (*extFS, error) {
	sb := make([]byte, 1024)
	if err := r.readFull(sb, start+extSBOff); err != nil {
		return nil, err
	}
	le16 := func(o int) uint32 { return uint32(binary.LittleEndian.Uint16(sb[o:])) }
	le32 := func(o int) uint32 { return binary.LittleEndian.Uint32(sb[o:]) }
	if le16(56) != 0xef53 {
		return nil, errors.New("no ext superblock")
	}
	e := &extFS{r: r, start: start, size: size, cache: map[uint64][]byte{}}
	logBS := le32(24)
	if logBS > 6 {
		return nil, fmt.Errorf("block size 2^%d", 10+logBS)
	}
	e.bs = 1024 << logBS
	e.inodes = le32(0)
	e.blocks = uint64(le32(4))
	e.firstDataBlock = le32(20)
	e.blocksPerGroup = le32(32)
	e.inodesPerGroup = le32(40)
	e.incompat, e.roCompat = le32(96), le32(100)
	e.is64 = e.incompat&extIncompat64Bit != 0
	if e.is64 {
		e.blocks |= uint64(le32(0x150)) << 32
	}
	e.inodeSize, e.descSize = 128, 32
	if le32(76) >= 1 { // dynamic revision
		e.inodeSize = int64(le16(88))
		if e.is64 {
			e.descSize = int64(le16(254))
		}
	}
	e.firstMetaBG = le32(0x104)
	e.backupBGs = [2]uint32{le32(0x24c), le32(0x250)}
	e.hasSparseSuper = e.roCompat&extROCompatSparseSuper != 0
	e.hasSparseSB2 = le32(92)&0x200 != 0
	bits := uint32(8 * e.bs)
	switch {
	case e.blocksPerGroup < 8 || e.blocksPerGroup > bits:
		return nil, fmt.Errorf("%d blocks per group", e.blocksPerGroup)
	case e.inodesPerGroup == 0 || e.inodesPerGroup > bits:
		return nil, fmt.Errorf("%d inodes per group", e.inodesPerGroup)
	case e.inodeSize < 128 || e.inodeSize > e.bs || e.inodeSize&(e.inodeSize-1) != 0:
		return nil, fmt.Errorf("inode size %d", e.inodeSize)
	case e.descSize < 32 || e.descSize > 1024 || e.descSize&(e.descSize-1) != 0 || (e.is64 && e.descSize < 64):
		return nil, fmt.Errorf("group descriptor size %d", e.descSize)
	case e.blocks <= uint64(e.firstDataBlock):
		return nil, fmt.Errorf("%d blocks", e.blocks)
	case e.incompat&extIncompatJournalDev != 0:
		return nil, errors.New("an external journal, not a filesystem")
	}
	e.groups = (e.blocks - uint64(e.firstDataBlock) + uint64(e.blocksPerGroup) - 1) / uint64(e.blocksPerGroup)
	if uint64(e.inodes) > e.groups*uint64(e.inodesPerGroup) {
		return nil, fmt.Errorf("%d inodes in %d groups of %d", e.inodes, e.groups, e.inodesPerGroup)
	}
	return e, nil
}

// inode is the part of an on-disk inode this reader uses.
type inode struct {
	num    uint32
	mode   uint32
	size   uint64
	flags  uint32
	blocks uint32 // i_blocks_lo, in 512-byte units
	acl    uint64 // extended attribute block
	iblock [60]byte
}

func (in *inode) isDir() bool     { return in.mode&modeType == modeDir }
func (in *inode) isRegular() bool { return in.mode&modeType == modeRegular }
func (in *inode) isSymlink() bool { return in.mode&modeType == modeSymlink }

// block reads filesystem block n (through a small cache for metadata).
func (e *extFS) block(n uint64, cached bool) ([]byte, error) {
	if n >= e.blocks {
		return nil, fmt.Errorf("block %d is beyond the filesystem's %d blocks", n, e.blocks)
	}
	if b, ok := e.cache[n]; ok && cached {
		return b, nil
	}
	off := int64(n) * e.bs
	if off+e.bs > e.size {
		return nil, fmt.Errorf("block %d is beyond the end of the partition", n)
	}
	b := make([]byte, e.bs)
	if err := e.r.readFull(b, e.start+off); err != nil {
		return nil, err
	}
	if cached {
		if len(e.cache) >= maxNodeCache {
			clear(e.cache)
		}
		e.cache[n] = b
	}
	return b, nil
}

// hasSuper reports whether group g holds a superblock backup (and so its
// descriptors, under meta_bg, start one block later).
func (e *extFS) hasSuper(g uint64) bool {
	switch {
	case g == 0:
		return true
	case e.hasSparseSB2:
		return g == uint64(e.backupBGs[0]) || g == uint64(e.backupBGs[1])
	case g <= 1 || !e.hasSparseSuper:
		return true
	}
	for _, base := range []uint64{3, 5, 7} {
		p := base
		for p < g && p <= math.MaxUint64/base {
			p *= base
		}
		if p == g {
			return true
		}
	}
	return false
}

// inodeTable returns the first block of group g's inode table.
func (e *extFS) inodeTable(g uint64) (uint64, error) {
	perBlock := uint64(e.bs / e.descSize)
	idx := g / perBlock
	var blk uint64
	if e.incompat&extIncompatMetaBG == 0 || idx < uint64(e.firstMetaBG) {
		blk = uint64(e.firstDataBlock) + 1 + idx
	} else {
		first := idx * perBlock
		blk = uint64(e.firstDataBlock) + first*uint64(e.blocksPerGroup)
		if e.hasSuper(first) {
			blk++
		}
	}
	b, err := e.block(blk, true)
	if err != nil {
		return 0, fmt.Errorf("group descriptor %d: %w", g, err)
	}
	desc := b[(g%perBlock)*uint64(e.descSize):]
	table := uint64(binary.LittleEndian.Uint32(desc[8:]))
	if e.is64 && e.descSize >= 64 {
		table |= uint64(binary.LittleEndian.Uint32(desc[0x28:])) << 32
	}
	return table, nil
}

// inode reads inode n.
func (e *extFS) inode(n uint32) (*inode, error) {
	if n == 0 || n > e.inodes {
		return nil, fmt.Errorf("inode %d does not exist (the filesystem has %d)", n, e.inodes)
	}
	g := uint64(n-1) / uint64(e.inodesPerGroup)
	idx := int64(n-1) % int64(e.inodesPerGroup)
	table, err := e.inodeTable(g)
	if err != nil {
		return nil, err
	}
	off := int64(table)*e.bs + idx*e.inodeSize
	if table >= e.blocks || off+128 > e.size {
		return nil, fmt.Errorf("inode %d lies outside the filesystem", n)
	}
	b := make([]byte, 128)
	if err := e.r.readFull(b, e.start+off); err != nil {
		return nil, fmt.Errorf("inode %d: %w", n, err)
	}
	in := &inode{
		num:    n,
		mode:   uint32(binary.LittleEndian.Uint16(b[0:])),
		size:   uint64(binary.LittleEndian.Uint32(b[4:])) | uint64(binary.LittleEndian.Uint32(b[108:]))<<32,
		blocks: binary.LittleEndian.Uint32(b[28:]),
		flags:  binary.LittleEndian.Uint32(b[32:]),
		acl:    uint64(binary.LittleEndian.Uint32(b[104:])) | uint64(binary.LittleEndian.Uint16(b[118:]))<<32,
	}
	copy(in.iblock[:], b[40:100])
	return in, nil
}

// mapBlock returns the physical block holding logical block l of in, or 0
// for a hole.
func (e *extFS) mapBlock(in *inode, l uint64) (uint64, error) {
	if in.flags&extExtentsFlag != 0 {
		return e.mapExtent(in.iblock[:], l)
	}
	if l >= 1<<32 {
		return 0, nil
	}
	ptr := func(b []byte, i uint64) uint64 { return uint64(binary.LittleEndian.Uint32(b[4*i:])) }
	if l < 12 {
		return ptr(in.iblock[:], l), nil
	}
	per := uint64(e.bs / 4)
	l -= 12
	// Single, double and triple indirection, as in ext2.
	span := per
	for level := 0; level < 3; level++ {
		if l < span {
			blk := ptr(in.iblock[:], uint64(12+level))
			for depth := level; ; depth-- {
				if blk == 0 {
					return 0, nil
				}
				b, err := e.block(blk, true)
				if err != nil {
					return 0, err
				}
				div := uint64(1)
				for i := 0; i < depth; i++ {
					div *= per
				}
				blk = ptr(b, (l/div)%per)
				if depth == 0 {
					return blk, nil
				}
			}
		}
		l -= span
		span *= per
	}
	return 0, nil
}

// mapExtent walks an extent tree (root in the inode's i_block) for logical
// block l.
func (e *extFS) mapExtent(node []byte, l uint64) (uint64, error) {
	for level := 0; ; level++ {
		if level > maxExtentDepth {
			return 0, errors.New("extent tree deeper than 5 levels")
		}
		if len(node) < 12 || binary.LittleEndian.Uint16(node[0:]) != 0xf30a {
			return 0, errors.New("bad extent header")
		}
		entries := int(binary.LittleEndian.Uint16(node[2:]))
		depth := binary.LittleEndian.Uint16(node[6:])
		if 12+12*entries > len(node) {
			return 0, fmt.Errorf("extent node claims %d entries", entries)
		}
		if int(depth) > maxExtentDepth-level {
			return 0, fmt.Errorf("extent node depth %d at level %d", depth, level)
		}
		if depth == 0 {
			for i := 0; i < entries; i++ {
				x := node[12+12*i:]
				first := uint64(binary.LittleEndian.Uint32(x[0:]))
				n := uint64(binary.LittleEndian.Uint16(x[4:]))
				uninit := n > 32768
				if uninit {
					n -= 32768
				}
				if l >= first && l < first+n {
					if uninit {
						return 0, nil // allocated but unwritten: reads as zeros
					}
					start := uint64(binary.LittleEndian.Uint16(x[6:]))<<32 | uint64(binary.LittleEndian.Uint32(x[8:]))
					return start + (l - first), nil
				}
			}
			return 0, nil
		}
		child := -1
		for i := 0; i < entries; i++ {
			if uint64(binary.LittleEndian.Uint32(node[12+12*i:])) <= l {
				child = i
			}
		}
		if child < 0 {
			return 0, nil
		}
		x := node[12+12*child:]
		leaf := uint64(binary.LittleEndian.Uint16(x[8:]))<<32 | uint64(binary.LittleEndian.Uint32(x[4:]))
		b, err := e.block(leaf, true)
		if err != nil {
			return 0, err
		}
		node = b
	}
}

// readFile reads the first max bytes of in; truncated reports that the file
// is longer.
func (e *extFS) readFile(in *inode, max int64) (data []byte, truncated bool, err error) {
	if in.flags&extEncryptFlag != 0 {
		return nil, false, errors.New("encrypted")
	}
	n := int64(in.size)
	if in.size > uint64(max) {
		n, truncated = max, true
	}
	if in.flags&extInlineDataFlag != 0 {
		if n > int64(len(in.iblock)) {
			return nil, false, errors.New("inline data longer than 60 bytes is not read")
		}
		return append([]byte(nil), in.iblock[:n]...), truncated, nil
	}
	out := make([]byte, 0, n)
	for l := uint64(0); int64(len(out)) < n; l++ {
		if err := e.r.ctx.Err(); err != nil {
			return nil, false, err
		}
		phys, err := e.mapBlock(in, l)
		if err != nil {
			return nil, false, err
		}
		want := min(e.bs, n-int64(len(out)))
		if phys == 0 {
			out = append(out, make([]byte, want)...)
			continue
		}
		b, err := e.block(phys, false)
		if err != nil {
			return nil, false, err
		}
		out = append(out, b[:want]...)
	}
	return out, truncated, nil
}

// dirent is one directory entry.
type dirent struct {
	name  string
	inode uint32
}

// eachEntry calls f for each entry of directory in until f returns false,
// reading at most maxEntries entries. It reports whether it stopped at the
// cap.
func (e *extFS) eachEntry(in *inode, maxEntries int, f func(dirent) bool) (capped bool, err error) {
	if !in.isDir() {
		return false, errors.New("not a directory")
	}
	if in.flags&extInlineDataFlag != 0 {
		return false, errors.New("inline directory is not read")
	}
	nblocks := (in.size + uint64(e.bs) - 1) / uint64(e.bs)
	if nblocks > maxDirBlocks {
		nblocks, capped = maxDirBlocks, true
	}
	seen := 0
	for l := uint64(0); l < nblocks; l++ {
		if err := e.r.ctx.Err(); err != nil {
			return false, err
		}
		phys, err := e.mapBlock(in, l)
		if err != nil {
			return false, err
		}
		if phys == 0 {
			continue
		}
		b, err := e.block(phys, false)
		if err != nil {
			return false, err
		}
		for off := int64(0); off+8 <= e.bs; {
			ino := binary.LittleEndian.Uint32(b[off:])
			rec := int64(binary.LittleEndian.Uint16(b[off+4:]))
			if rec == 0 || rec == 65535 { // ext4_rec_len_from_disk: the whole 64 KiB block
				rec = e.bs
			}
			nameLen := int64(b[off+6])
			if e.incompat&extIncompatFiletype == 0 {
				nameLen |= int64(b[off+7]) << 8
			}
			if rec < 8 || rec%4 != 0 || off+rec > e.bs || 8+nameLen > rec {
				break // a damaged block: skip the rest of it
			}
			if ino != 0 && nameLen > 0 {
				seen++
				if seen > maxEntries {
					return true, nil
				}
				if !f(dirent{name: string(b[off+8 : off+8+nameLen]), inode: ino}) {
					return capped, nil
				}
			}
			off += rec
		}
	}
	return capped, nil
}

// lookup finds name in directory in.
func (e *extFS) lookup(in *inode, name string, maxEntries int) (uint32, error) {
	var found uint32
	capped, err := e.eachEntry(in, maxEntries, func(de dirent) bool {
		if de.name == name {
			found = de.inode
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return 0, err
	case found != 0:
		return found, nil
	case capped:
		return 0, fmt.Errorf("%q not among the first %d entries", name, maxEntries)
	}
	return 0, fs.ErrNotExist
}

// readlink reads a symlink's target.
func (e *extFS) readlink(in *inode) (string, error) {
	if in.size == 0 || in.size > maxSymlinkLen {
		return "", fmt.Errorf("symlink target of %d bytes", in.size)
	}
	// A fast symlink keeps its target in i_block, when it has no data
	// blocks (an extended attribute block may count in i_blocks).
	eaBlocks := uint32(0)
	if in.acl != 0 {
		eaBlocks = uint32(e.bs / 512)
	}
	if in.size < 60 && in.flags&(extExtentsFlag|extInlineDataFlag) == 0 && in.blocks-eaBlocks == 0 {
		return string(in.iblock[:in.size]), nil
	}
	b, _, err := e.readFile(in, maxSymlinkLen)
	return string(b), err
}

// resolve looks up an absolute path, following symlinks (also in the last
// component when follow is true) within this filesystem, as if it were
// mounted at /. It returns the inode and the path it resolved to.
func (e *extFS) resolve(p string, follow bool, maxEntries int) (*inode, string, error) {
	root, err := e.inode(2)
	if err != nil {
		return nil, "", err
	}
	if !root.isDir() {
		return nil, "", errors.New("the root inode is not a directory")
	}
	todo := splitPath(p)
	cur, curPath := root, []string{}
	links, steps := 0, 0
	for len(todo) > 0 {
		if steps++; steps > maxComponents {
			return nil, "", fmt.Errorf("%s: more than %d path components", p, maxComponents)
		}
		name := todo[0]
		todo = todo[1:]
		switch name {
		case ".":
			continue
		case "..":
			if len(curPath) > 0 {
				curPath = curPath[:len(curPath)-1]
			}
		}
		if !cur.isDir() {
			return nil, "", fmt.Errorf("/%s is not a directory", strings.Join(curPath, "/"))
		}
		num, err := e.lookup(cur, name, maxEntries)
		if err != nil {
			return nil, "", err
		}
		next, err := e.inode(num)
		if err != nil {
			return nil, "", err
		}
		if next.isSymlink() && (len(todo) > 0 || follow) {
			if links++; links > maxSymlinks {
				return nil, "", fmt.Errorf("%s: more than %d symlinks", p, maxSymlinks)
			}
			target, err := e.readlink(next)
			if err != nil {
				return nil, "", err
			}
			todo = append(splitPath(target), todo...)
			if strings.HasPrefix(target, "/") {
				cur, curPath = root, curPath[:0]
			}
			continue
		}
		if name != ".." {
			curPath = append(curPath, name)
		}
		cur = next
	}
	return cur, "/" + strings.Join(curPath, "/"), nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
