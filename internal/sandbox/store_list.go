package sandbox

import (
	"bytes"
	"sort"
	"strings"
)

// ---- listing ----

type listOpts struct {
	prefix, delimiter, marker string
	limit                     int
	virtual, shared, public   bool
	filters                   *metaFilter
}

type listItem struct {
	name      string
	subdir    bool
	v         *versionRec
	perms     *Permissions
	permsPath string
	allowed   string
	public    string
}

// listObjects is list_object_meta for one container.
func (st *Store) listObjects(user, acct, cont string, o listOpts) ([]listItem, error) {
	var out []listItem
	err := st.view(func(t *txn) error {
		if _, err := t.container(acct, cont); err != nil {
			return err
		}
		base := okey(acct, cont, "")
		// allowed restricts the names: exact paths, plus directory prefixes.
		var exact map[string]bool
		var dirs []string
		restrict := func(paths [][]byte) error {
			exact = map[string]bool{}
			for _, k := range paths {
				n := string(k[len(base):])
				exact[n] = true
				v, err := t.current(k)
				if err != nil {
					return err
				}
				if v != nil && isDirectoryType(v.Type) {
					dirs = append(dirs, strings.TrimRight(n, "/")+"/")
				}
			}
			return nil
		}
		if user != acct {
			paths, err := t.sharedPaths(user, base)
			if err != nil {
				return err
			}
			if len(paths) == 0 {
				return &ErrForbidden{Msg: "Browsing other account's history is not allowed"}
			}
			if err := restrict(paths); err != nil {
				return err
			}
		} else if o.shared || o.public {
			var paths [][]byte
			if o.shared {
				p, err := t.sharedPaths("", base)
				if err != nil {
					return err
				}
				paths = append(paths, p...)
			}
			if o.public {
				c := t.public.Cursor()
				for k, _ := c.Seek(base); k != nil && bytes.HasPrefix(k, base); k, _ = c.Next() {
					paths = append(paths, append([]byte(nil), k...))
				}
			}
			if len(paths) == 0 {
				return nil
			}
			if err := restrict(paths); err != nil {
				return err
			}
		}
		visible := func(n string) bool {
			if exact == nil || exact[n] {
				return true
			}
			for _, d := range dirs {
				if strings.HasPrefix(n, d) {
					return true
				}
			}
			return false
		}
		start := append(append([]byte(nil), base...), o.prefix...)
		if o.marker != "" && o.marker > o.prefix {
			start = okey(acct, cont, o.marker)
		}
		lastSub := ""
		c := t.objects.Cursor()
		for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, base); k, _ = c.Next() {
			n := string(k[len(base):])
			if !strings.HasPrefix(n, o.prefix) {
				break
			}
			if (o.marker != "" && n <= o.marker) || !visible(n) {
				continue
			}
			if lastSub != "" && strings.HasPrefix(n, lastSub) {
				continue
			}
			if o.delimiter != "" {
				if i := strings.Index(n[len(o.prefix):], o.delimiter); i >= 0 {
					end := len(o.prefix) + i + len(o.delimiter)
					if end != len(n) {
						lastSub = n[:end]
						if o.virtual {
							out = append(out, listItem{name: lastSub, subdir: true})
							if len(out) >= o.limit {
								break
							}
						}
						continue
					}
				}
			}
			v, err := t.current(k)
			if err != nil {
				return err
			}
			if o.filters != nil && !o.filters.match(v.Meta[DomainPithos]) {
				continue
			}
			it := listItem{name: n, v: v}
			if kp, p, err := t.permissionsPath(acct, cont, n); err != nil {
				return err
			} else if p != nil {
				it.perms = p
				a, cn, pn := splitOkey(kp)
				it.permsPath = a + "/" + cn + "/" + pn
				if user != acct {
					it.allowed = t.allowedAction(user, acct, cont, n)
				}
			}
			if user == acct {
				it.public = t.publicToken(k)
			}
			out = append(out, it)
			if len(out) >= o.limit {
				break
			}
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
		return nil
	})
	return out, err
}

// metaFilter is the ?meta= query of a listing (pithos/backends/filter.py):
// any of included exists, none of excluded exists, every operation holds.
type metaFilter struct {
	included, excluded []string
	opers              [][3]string
}

func (f *metaFilter) match(meta map[string]string) bool {
	if len(f.included) > 0 {
		found := false
		for _, k := range f.included {
			if _, ok := meta[k]; ok {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, k := range f.excluded {
		if _, ok := meta[k]; ok {
			return false
		}
	}
	for _, op := range f.opers {
		v, ok := meta[op[0]]
		if !ok {
			return false
		}
		var hold bool
		switch op[1] {
		case "=":
			hold = v == op[2]
		case "!=":
			hold = v != op[2]
		case "<=":
			hold = v <= op[2]
		case ">=":
			hold = v >= op[2]
		case "<":
			hold = v < op[2]
		case ">":
			hold = v > op[2]
		}
		if !hold {
			return false
		}
	}
	return true
}
