package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// ---- listing ----

// ListOptions are the parameters of an object listing (list_object_meta).
type ListOptions struct {
	Prefix, Delimiter, Marker string
	Limit                     int
	Virtual, Shared, Public   bool
	Filter                    *MetaFilter
	// Until lists the objects as they were then (no sharing or public
	// details, which have no history).
	Until Until
}

// ListItem is one listed object, or a virtual directory (Subdir).
type ListItem struct {
	Name        string
	Subdir      bool
	Version     *Version
	Perms       *Permissions
	PermsPath   string
	AllowedTo   string
	PublicToken string
}

// ListObjects is list_object_meta for one container; with o.Until, the
// objects whose latest version before then was not a deletion.
func (st *Store) ListObjects(user, acct, cont string, o ListOptions) ([]ListItem, error) {
	var out []ListItem
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
		} else if o.Shared || o.Public {
			var paths [][]byte
			if o.Shared {
				p, err := t.sharedPaths("", base)
				if err != nil {
					return err
				}
				paths = append(paths, p...)
			}
			if o.Public {
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
		start := append(append([]byte(nil), base...), o.Prefix...)
		if o.Marker != "" && o.Marker > o.Prefix {
			start = okey(acct, cont, o.Marker)
		}
		lastSub := ""
		next := t.liveObjects(start)
		if o.Until.Set {
			next = t.objectsBefore(start, base, o.Until.before())
		}
		for k, load := next(); k != nil && bytes.HasPrefix(k, base); k, load = next() {
			n := string(k[len(base):])
			if !strings.HasPrefix(n, o.Prefix) {
				break
			}
			if (o.Marker != "" && n <= o.Marker) || !visible(n) {
				continue
			}
			if lastSub != "" && strings.HasPrefix(n, lastSub) {
				continue
			}
			if o.Delimiter != "" {
				if i := strings.Index(n[len(o.Prefix):], o.Delimiter); i >= 0 {
					end := len(o.Prefix) + i + len(o.Delimiter)
					if end != len(n) {
						lastSub = n[:end]
						if o.Virtual {
							out = append(out, ListItem{Name: lastSub, Subdir: true})
							if len(out) >= o.Limit {
								break
							}
						}
						continue
					}
				}
			}
			v, err := load()
			if err != nil {
				return err
			}
			if o.Filter != nil && !o.Filter.match(v.Meta[DomainPithos]) {
				continue
			}
			it := ListItem{Name: n, Version: v}
			if o.Until.Set {
				// list_object_meta with until: no permissions or public URLs.
			} else if kp, p, err := t.permissionsPath(acct, cont, n); err != nil {
				return err
			} else if p != nil {
				it.Perms = p
				a, cn, pn := splitOkey(kp)
				it.PermsPath = a + "/" + cn + "/" + pn
				if user != acct {
					it.AllowedTo = t.allowedAction(user, acct, cont, n)
				}
			}
			if user == acct && !o.Until.Set {
				it.PublicToken = t.publicToken(k)
			}
			out = append(out, it)
			if len(out) >= o.Limit {
				break
			}
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return nil
	})
	return out, err
}

// liveObjects walks the live objects from start in name order: each key
// with a function that loads its current version.
func (t *txn) liveObjects(start []byte) func() ([]byte, func() (*Version, error)) {
	c := t.objects.Cursor()
	k, _ := c.Seek(start)
	return func() ([]byte, func() (*Version, error)) {
		if k == nil {
			return nil, nil
		}
		key := k
		k, _ = c.Next()
		return key, func() (*Version, error) { return t.current(key) }
	}
}

// objectsBefore walks, from start in name order, the objects whose latest
// version before before was not a deletion (latest_version_list with
// before and except_cluster=CLUSTER_DELETED), each with that version.
func (t *txn) objectsBefore(start, base []byte, before int64) func() ([]byte, func() (*Version, error)) {
	c := t.versions.Cursor()
	k, data := c.Seek(start)
	return func() ([]byte, func() (*Version, error)) {
		for k != nil && bytes.HasPrefix(k, base) {
			ok := append([]byte(nil), k[:len(k)-9]...)
			var best *Version
			for ; k != nil && len(k) == len(ok)+9 && bytes.HasPrefix(k, ok); k, data = c.Next() {
				var v Version
				if err := json.Unmarshal(data, &v); err != nil {
					return ok, func() (*Version, error) { return nil, fmt.Errorf("sandbox: corrupt version %q: %w", k, err) }
				}
				if v.Mtime < before && (best == nil || v.Serial > best.Serial) {
					best = &v
				}
			}
			if best != nil && !best.Deleted {
				return ok, func() (*Version, error) { return best, nil }
			}
		}
		return nil, nil
	}
}

// MetaFilter is the ?meta= query of a listing (pithos/backends/filter.py):
// any of included exists, none of excluded exists, every operation holds.
type MetaFilter struct {
	Included, Excluded []string
	Ops                [][3]string
}

func (f *MetaFilter) match(meta map[string]string) bool {
	if len(f.Included) > 0 {
		found := false
		for _, k := range f.Included {
			if _, ok := meta[k]; ok {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, k := range f.Excluded {
		if _, ok := meta[k]; ok {
			return false
		}
	}
	for _, op := range f.Ops {
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
