package inspect

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
)

// OS families, as snf-image names them.
const (
	FamilyLinux   = "linux"
	FamilyWindows = "windows"
)

// extPart is an ext filesystem found on a partition.
type extPart struct {
	p  Partition
	fs *extFS
}

func (x extPart) where() string { return x.p.Label() }

func isExt(fs string) bool { return fs == FSExt2 || fs == FSExt3 || fs == FSExt4 }

// findOS decides OSFAMILY and ROOT_PARTITION and, for Linux, reads the
// root's files. Like snf-image's own detection, a Linux root is an ext
// filesystem with /etc (holding fstab, os-release or passwd), a Windows one
// an NTFS filesystem, a BSD one a partition of a BSD type.
func (d *detector) findOS() {
	rep := d.rep
	var exts []extPart
	root, markers := -1, []string(nil)
	for _, p := range rep.Partitions {
		if !isExt(p.Filesystem) {
			continue
		}
		if d.stopped() {
			return
		}
		x := extPart{p: p}
		var err error
		d.guard(x.where(), func() { x.fs, err = openExt(d.r, p.Start, p.Size) })
		if x.fs == nil {
			if err != nil {
				d.readErrOr(x.where()+": cannot read the filesystem", err)
			}
			continue
		}
		exts = append(exts, x)
		var m []string
		d.guard(x.where()+" /etc", func() { m = d.rootMarkers(x) })
		switch {
		case len(m) == 0:
		case root < 0:
			root, markers = len(exts)-1, m
		default:
			rep.note("%s also looks like a Linux root (/etc holds %s); %s is taken as the root", x.where(), strings.Join(m, ", "), exts[root].where())
		}
	}
	if d.stopped() {
		return
	}
	switch {
	case root >= 0:
		d.linux(exts[root], markers, exts)
	case d.windows():
	case d.bsd():
	default:
		if rep.Complete {
			rep.note("no Linux root (an ext filesystem with /etc), NTFS filesystem or BSD partition found")
		}
	}
}

// readErrOr records err through readErr when it is a read failure, else as
// a plain note.
func (d *detector) readErrOr(what string, err error) {
	if d.stopped() || errors.Is(err, errBudget) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		d.readErr(what, err)
		return
	}
	d.rep.note("%s: %v", what, err)
}

// rootMarkers lists what in /etc makes x a Linux root.
func (d *detector) rootMarkers(x extPart) []string {
	etc, _, err := x.fs.resolve("/etc", true, d.lim.DirEntries)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.readErrOr(x.where()+" /etc", err)
		}
		return nil
	}
	if !etc.isDir() {
		return nil
	}
	var found []string
	for _, name := range []string{"fstab", "os-release", "passwd"} {
		if _, err := x.fs.lookup(etc, name, d.lim.DirEntries); err == nil {
			found = append(found, name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			d.readErrOr(x.where()+" /etc/"+name, err)
		}
	}
	return found
}

func (d *detector) linux(x extPart, markers []string, exts []extPart) {
	rep, p, where := d.rep, x.p, x.where()
	rep.set(OSFamily, FamilyLinux, fmt.Sprintf("%s: a Linux root (/etc holds %s)", where, strings.Join(markers, ", ")))
	switch {
	case p.Number == 0:
		rep.note("the Linux root fills the whole disk, with no partition table: ROOT_PARTITION cannot name it (snf-image deploys a diskdump of a partitioned disk; register a bare filesystem as extdump)")
	case !p.Primary:
		rep.note("the Linux root is on logical partition %d: snf-image needs it on a primary partition, so ROOT_PARTITION is not set", p.Number)
	default:
		rep.set(RootPartition, strconv.Itoa(p.Number), where+": the Linux root filesystem")
	}
	d.guard(where+" os-release", func() { d.osRelease(x) })
	d.guard(where+" /etc/passwd", func() { d.users(x) })
	d.guard(where+" /boot", func() { d.kernels(x, exts) })
}

// readText reads a small file by path, following symlinks. It returns the
// path as evidence ("/etc/os-release → /usr/lib/os-release").
func (d *detector) readText(x extPart, path string, max int64) (data []byte, evidence string, err error) {
	in, resolved, err := x.fs.resolve(path, true, d.lim.DirEntries)
	if err != nil {
		return nil, "", err
	}
	if !in.isRegular() {
		return nil, "", fmt.Errorf("%s is not a regular file", path)
	}
	data, truncated, err := x.fs.readFile(in, min(max, d.lim.FileBytes))
	if err != nil {
		return nil, "", err
	}
	evidence = path
	if resolved != path {
		evidence += " (→ " + resolved + ")"
	}
	if truncated {
		d.rep.note("%s %s is longer than %d bytes; only that much was read", x.where(), path, min(max, d.lim.FileBytes))
	}
	return data, evidence, nil
}

// maxOSRelease: os-release files are a few hundred bytes.
const maxOSRelease = 64 << 10

func (d *detector) osRelease(x extPart) {
	for _, path := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		data, ev, err := d.readText(x, path, maxOSRelease)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			d.readErrOr(x.where()+" "+path, err)
			return
		}
		kv := ParseOSRelease(data)
		id := kv["ID"]
		if id == "" {
			id = "linux" // os-release(5): the default ID
		}
		d.rep.set(OS, id, x.where()+" "+ev+" (ID)")
		switch {
		case kv["PRETTY_NAME"] != "":
			d.rep.set(Description, kv["PRETTY_NAME"], x.where()+" "+ev+" (PRETTY_NAME)")
		case kv["NAME"] != "":
			desc := strings.TrimSpace(kv["NAME"] + " " + kv["VERSION"])
			d.rep.set(Description, desc, x.where()+" "+ev+" (NAME and VERSION)")
		}
		return
	}
	d.rep.note("%s: no /etc/os-release or /usr/lib/os-release, so OS and DESCRIPTION are not set", x.where())
}

func (d *detector) users(x extPart) {
	data, ev, err := d.readText(x, "/etc/passwd", d.lim.FileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		d.rep.note("%s: no /etc/passwd, so USERS is not set", x.where())
		return
	}
	if err != nil {
		d.readErrOr(x.where()+" /etc/passwd", err)
		return
	}
	uidMin, uidEv := uint64(1000), "1000"
	if defs, _, err := d.readText(x, "/etc/login.defs", maxOSRelease); err == nil {
		if v, ok := ParseUIDMin(defs); ok {
			uidMin, uidEv = v, fmt.Sprintf("%d, UID_MIN in /etc/login.defs", v)
		}
	}
	users := LoginUsers(ParsePasswd(data), uidMin)
	if len(users) == 0 {
		d.rep.note("%s %s lists no account with a login shell, so USERS is not set", x.where(), ev)
		return
	}
	var b strings.Builder
	kept := 0
	for _, u := range users {
		if b.Len()+1+len(u) > maxValue {
			break
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(u)
		kept++
	}
	if kept < len(users) {
		d.rep.note("%s %s: %d accounts with a login shell; the first %d fit in a property value", x.where(), ev, len(users), kept)
	}
	d.rep.set(Users, b.String(), fmt.Sprintf("%s %s (accounts with a login shell: root, and UIDs from %s)", x.where(), ev, uidEv))
}

// kernels sets KERNEL to the newest kernel version in the root's /boot or,
// when that has none, at the top of another ext filesystem (a separate
// /boot partition).
func (d *detector) kernels(root extPart, exts []extPart) {
	type found struct {
		x     extPart
		dir   string
		vers  []string
		names map[string]string // version → file name
	}
	list := func(x extPart, dir string) (found, error) {
		f := found{x: x, dir: dir, names: map[string]string{}}
		in, _, err := x.fs.resolve(dir, true, d.lim.DirEntries)
		if err != nil {
			return f, err
		}
		capped, err := x.fs.eachEntry(in, d.lim.DirEntries, func(de dirent) bool {
			if v, ok := KernelVersion(de.name); ok {
				f.vers = append(f.vers, v)
				f.names[v] = de.name
			}
			return true
		})
		if capped {
			d.rep.note("%s %s has more than %d entries; only those were read", x.where(), dir, d.lim.DirEntries)
		}
		return f, err
	}
	f, err := list(root, "/boot")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.readErrOr(root.where()+" /boot", err)
	}
	if len(f.vers) == 0 {
		for _, x := range exts {
			if x.p.Number == root.p.Number {
				continue
			}
			if g, err := list(x, "/"); err == nil && len(g.vers) > 0 {
				f = g
				break
			}
		}
	}
	if len(f.vers) == 0 {
		d.rep.note("%s: no kernel (vmlinuz-VERSION) in /boot, so KERNEL is not set", root.where())
		return
	}
	newest := f.vers[0]
	for _, v := range f.vers[1:] {
		if CompareVersions(v, newest) > 0 {
			newest = v
		}
	}
	ev := f.x.where() + " " + strings.TrimSuffix(f.dir, "/") + "/" + f.names[newest]
	if len(f.vers) > 1 {
		ev += fmt.Sprintf(" (the newest of %d kernels)", len(f.vers))
	}
	d.rep.set(Kernel, newest, ev)
}

// windows sets OSFAMILY=windows from an NTFS filesystem, the root being the
// largest one on a primary partition.
func (d *detector) windows() bool {
	var best *Partition
	n := 0
	for i := range d.rep.Partitions {
		p := &d.rep.Partitions[i]
		if p.Filesystem != FSNTFS {
			continue
		}
		n++
		if p.Number != 0 && !p.Primary {
			d.rep.note("%s (logical) holds NTFS; snf-image needs the root on a primary partition", p.Where())
			continue
		}
		if best == nil || p.Size > best.Size {
			best = p
		}
	}
	if best == nil {
		return false
	}
	why := "an NTFS boot sector"
	if n > 1 {
		why = fmt.Sprintf("the largest of %d NTFS filesystems", n)
	}
	ev := fmt.Sprintf("%s: %s (Windows before Vista needs OSFAMILY windows-legacy, set by hand)", best.Label(), why)
	d.rep.set(OSFamily, FamilyWindows, ev)
	if best.Number == 0 {
		d.rep.note("the NTFS filesystem fills the whole disk, with no partition table: ROOT_PARTITION cannot name it (register a bare filesystem as ntfsdump)")
	} else {
		d.rep.set(RootPartition, strconv.Itoa(best.Number), fmt.Sprintf("%s: %s", best.Label(), why))
	}
	return true
}

// bsd sets OSFAMILY from the first primary partition of a BSD type, as
// snf-image's own detection does.
func (d *detector) bsd() bool {
	for _, p := range d.rep.Partitions {
		fam := bsdFamily(p)
		if fam == "" || !p.Primary || (p.Filesystem != "" && p.Filesystem != FSUFS) {
			continue
		}
		ev := fmt.Sprintf("%s type %s (%s)", p.Where(), p.Type, p.TypeName)
		if p.Filesystem == FSUFS {
			ev += " with a UFS superblock"
		}
		d.rep.set(OSFamily, fam, ev)
		d.rep.set(RootPartition, strconv.Itoa(p.Number), ev)
		return true
	}
	return false
}

// ParseOSRelease reads an os-release(5) file: KEY=value lines, values
// optionally in single or double quotes with backslash escapes; comments
// and malformed lines are skipped.
func ParseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !isEnvName(k) {
			continue
		}
		val, ok := shellUnquote(v)
		if !ok {
			continue
		}
		if len(out) >= 256 {
			break
		}
		out[k] = val
	}
	return out
}

func isEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c == '_' || c >= '0' && c <= '9' && i > 0) {
			return false
		}
	}
	return true
}

// shellUnquote reads one shell word as os-release(5) allows: "…" (with \"
// \\ \$ \` escapes), '…', or bare text with backslash escapes.
func shellUnquote(s string) (string, bool) {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", false
			}
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", false
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case ' ', '\t', '#':
			return b.String(), true
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// Account is one /etc/passwd entry.
type Account struct {
	Name  string
	UID   uint64
	Shell string
}

// ParsePasswd reads /etc/passwd entries (name:password:uid:gid:gecos:home:
// shell); NIS (+/-) and malformed lines are skipped.
func ParsePasswd(data []byte) []Account {
	var out []Account
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 7 || f[0] == "" || strings.ContainsAny(f[0], " \t") {
			continue
		}
		uid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		out = append(out, Account{Name: f[0], UID: uid, Shell: f[6]})
	}
	return out
}

// nonLoginShells are the shells of accounts nobody logs in to.
var nonLoginShells = map[string]bool{
	"nologin": true, "false": true, "true": true, "sync": true, "shutdown": true, "halt": true, "null": true,
}

// LoginShell reports whether an account with this shell can log in.
func LoginShell(shell string) bool {
	shell = strings.TrimSpace(shell)
	if shell == "" {
		return false
	}
	base := shell[strings.LastIndexByte(shell, '/')+1:]
	return !nonLoginShells[base]
}

// LoginUsers are the accounts whose passwords snf-image should reset: root
// and the regular users (UID from uidMin, except nobody's 65534), with a
// login shell, in file order, once each.
func LoginUsers(accts []Account, uidMin uint64) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range accts {
		if seen[a.Name] || !LoginShell(a.Shell) || (a.UID != 0 && (a.UID < uidMin || a.UID == 65534)) {
			continue
		}
		seen[a.Name] = true
		out = append(out, a.Name)
	}
	return out
}

// ParseUIDMin reads UID_MIN from /etc/login.defs.
func ParseUIDMin(data []byte) (uint64, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "UID_MIN" {
			if v, err := strconv.ParseUint(f[1], 10, 32); err == nil && v > 0 {
				return v, true
			}
		}
	}
	return 0, false
}

// KernelVersion returns the version of a kernel file name in /boot
// ("vmlinuz-6.1.0-18-amd64" → "6.1.0-18-amd64").
func KernelVersion(name string) (string, bool) {
	for _, prefix := range []string{"vmlinuz-", "vmlinux-"} {
		if v, ok := strings.CutPrefix(name, prefix); ok && v != "" && v[0] >= '0' && v[0] <= '9' {
			return v, true
		}
	}
	return "", false
}

// CompareVersions orders kernel versions: runs of digits compare as
// numbers, the rest as text ("6.1.0-18" > "6.1.0-9" > "5.10.0-28").
func CompareVersions(a, b string) int {
	for a != "" && b != "" {
		ra, resta := versionRun(a)
		rb, restb := versionRun(b)
		da, db := isDigit(ra[0]), isDigit(rb[0])
		switch {
		case da && db:
			na, nb := strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
			if len(na) != len(nb) {
				return cmp(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
		case da != db:
			if da {
				return 1
			}
			return -1
		default:
			if c := strings.Compare(ra, rb); c != 0 {
				return c
			}
		}
		a, b = resta, restb
	}
	return cmp(len(a), len(b))
}

func versionRun(s string) (run, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func cmp(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
