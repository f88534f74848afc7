package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ---- accounts ----

// AccountInfo is what account HEAD/GET report.
type AccountInfo struct {
	Name       string
	Containers int64
	Bytes      int64
	Mtime      int64 // the last modification (Last-Modified)
	Meta       map[string]string
	Groups     map[string][]string
	Owner      bool // the requester owns the account; only then are meta/stats reported
	// With ?until (owner only): the view is of the account then, and Until
	// is its last modification before (X-Account-Until-Timestamp).
	HasUntil bool
	Until    int64
}

// Account is get_account_meta (and get_account_groups) for user; the
// owner's first look creates the account, as _lookup_account does. With
// until it is the owner's view of the account then; other users may not
// browse an account's history.
func (st *Store) Account(user, acct string, until Until) (*AccountInfo, error) {
	var info *AccountInfo
	missing := false
	read := func(t *txn) error {
		if err := t.canReadAccount(user, acct); err != nil {
			return err
		}
		if user != acct && until.Set && until.Unix != 0 {
			return &ErrForbidden{Msg: "Browsing other account's history is not allowed"}
		}
		a, found, err := t.account(acct)
		if err != nil {
			return err
		}
		if user == acct && !found {
			// The owner's first request creates the account node.
			if missing {
				a.Mtime = st.now()
				a.MetaMtime = a.Mtime
				if err := putJSON(t.accounts, []byte(acct), a); err != nil {
					return err
				}
			} else {
				missing = true
				return nil
			}
		}
		info = &AccountInfo{Name: acct, Mtime: a.Mtime, Owner: user == acct}
		if user == acct {
			info.Containers, info.Bytes, err = t.accountUsage(acct)
			if err != nil {
				return err
			}
			info.Meta, info.Groups = a.Meta, a.Groups
			if until.Set {
				return t.accountAt(info, a, acct, until)
			}
		}
		return nil
	}
	if err := st.view(read); err != nil || !missing {
		return info, err
	}
	return info, st.update(read)
}

// UpdateAccount is account POST: meta and groups, merged or replaced.
func (st *Store) UpdateAccount(user, acct string, meta map[string]string, groups map[string][]string, replace bool) error {
	if user != acct {
		return &ErrForbidden{Msg: "User does not have write access to the account"}
	}
	return st.update(func(t *txn) error {
		now := st.now()
		a, err := t.touchAccount(acct, now)
		if err != nil {
			return err
		}
		if len(groups) > 0 {
			g := map[string][]string{}
			if !replace {
				for k, v := range a.Groups {
					g[k] = v
				}
			}
			for k, v := range groups {
				if len(v) == 0 {
					delete(g, k)
				} else {
					g[k] = v
				}
			}
			if len(g) > maxGroups {
				return &ErrLimitExceeded{Msg: fmt.Sprintf("Pithos+ accounts cannot have more than %d groups", maxGroups)}
			}
			for _, v := range g {
				if len(v) > maxGroupMembers {
					return &ErrLimitExceeded{Msg: fmt.Sprintf("Pithos+ groups cannot have more than %d members", maxGroupMembers)}
				}
			}
			a.Groups = g
		}
		if len(meta) > 0 || replace {
			m, err := mergeMeta(a.Meta, meta, replace)
			if err != nil {
				return err
			}
			a.props.newVersion(&a.Meta, m, now)
		}
		return putJSON(t.accounts, []byte(acct), a)
	})
}

// ListContainers is account GET: names visible to user. With until, the
// owner's containers that existed then (list_containers).
func (st *Store) ListContainers(user, acct, marker string, limit int, shared, public bool, until Until) ([]string, error) {
	var out []string
	err := st.view(func(t *txn) error {
		if err := t.canReadAccount(user, acct); err != nil {
			return err
		}
		if user != acct && until.Set && until.Unix != 0 {
			return &ErrForbidden{Msg: "Browsing other account's history is not allowed"}
		}
		if user != acct {
			var err error
			out, err = t.allowedContainers(user, acct)
			return err
		}
		if shared || public {
			set := map[string]bool{}
			if shared {
				paths, err := t.sharedPaths("", []byte(acct+sep))
				if err != nil {
					return err
				}
				for _, k := range paths {
					_, c, _ := splitOkey(k)
					set[c] = true
				}
			}
			if public {
				p := []byte(acct + sep)
				c := t.public.Cursor()
				for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
					_, cn, _ := splitOkey(k)
					set[cn] = true
				}
			}
			for c := range set {
				out = append(out, c)
			}
			sort.Strings(out)
			return nil
		}
		p := []byte(acct + sep)
		c := t.containers.Cursor()
		start := p
		if marker != "" {
			start = ckey(acct, marker)
		}
		for k, data := c.Seek(start); k != nil && bytes.HasPrefix(k, p); k, data = c.Next() {
			name := string(k[len(p):])
			if marker != "" && name <= marker {
				continue
			}
			if until.Set {
				var cr containerRec
				if err := json.Unmarshal(data, &cr); err != nil {
					return fmt.Errorf("sandbox: corrupt container %q: %w", k, err)
				}
				if _, _, existed := cr.props.at(cr.Meta, until.before()); !existed {
					continue
				}
			}
			out = append(out, name)
			if len(out) >= limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// ListAccounts is GET / with a token: accounts that share something with user.
func (st *Store) ListAccounts(user string) ([]string, error) {
	var out []string
	err := st.view(func(t *txn) error {
		var err error
		out, err = t.allowedAccounts(user)
		return err
	})
	return out, err
}

// ---- containers ----

// ContainerInfo is what container HEAD/GET report.
type ContainerInfo struct {
	Name       string
	Count      int64
	Bytes      int64
	Mtime      int64
	BlockSize  int
	Quota      int64
	Versioning string
	Project    string
	Meta       map[string]string
	ObjectMeta []string // X-Container-Object-Meta keys
	Owner      bool
	// With ?until (owner only): the view is of the container then, and
	// Until is its last modification before (X-Container-Until-Timestamp).
	HasUntil bool
	Until    int64
}

func (st *Store) newContainer(acct string, now int64) *containerRec {
	return &containerRec{Mtime: now, BlockSize: st.blockSize, Versioning: "auto", Project: acct, props: props{MetaMtime: now}}
}

// checkPolicy validates X-Container-Policy-* (modular.py _check_policy).
func checkPolicy(policy map[string]string) error {
	for k, v := range policy {
		switch k {
		case "quota":
			q, err := strconv.ParseInt(v, 10, 64)
			if err != nil || q < 0 {
				return &ErrBadRequest{Msg: "The quota policy value should be a positive integer."}
			}
		case "versioning":
			if v != "auto" && v != "none" {
				return &ErrBadRequest{Msg: "The versioning policy value should be either 'auto' or 'none'."}
			}
		case "project":
		default:
			return &ErrBadRequest{Msg: "The only allowed policies are 'quota' or 'versioning'."}
		}
	}
	return nil
}

func applyPolicy(c *containerRec, policy map[string]string, replace bool, acct string) {
	if replace {
		c.Quota, c.Versioning, c.Project = 0, "auto", acct
	}
	for k, v := range policy {
		switch k {
		case "quota":
			c.Quota, _ = strconv.ParseInt(v, 10, 64)
		case "versioning":
			c.Versioning = v
		case "project":
			c.Project = v
		}
	}
}

// CreateContainer is container PUT: it reports whether the container was
// created (201) or existed (202), then merges policy and meta.
func (st *Store) CreateContainer(user, acct, cont string, policy, meta map[string]string) (bool, error) {
	if err := CanWriteContainer(user, acct); err != nil {
		return false, err
	}
	if err := checkPolicy(policy); err != nil {
		return false, err
	}
	created := false
	err := st.update(func(t *txn) error {
		now := st.now()
		c, err := t.container(acct, cont)
		if IsNotFound(err) {
			created = true
			c = st.newContainer(acct, now)
		} else if err != nil {
			return err
		}
		applyPolicy(c, policy, false, acct)
		if len(meta) > 0 {
			m, err := mergeMeta(c.Meta, meta, false)
			if err != nil {
				return err
			}
			if created {
				c.Meta = m
			} else {
				c.props.newVersion(&c.Meta, m, now)
			}
			c.Mtime = now
		}
		if _, err := t.touchAccount(acct, now); err != nil {
			return err
		}
		return t.putContainer(acct, cont, c)
	})
	return created, err
}

// UpdateContainer is the meta/policy half of container POST.
func (st *Store) UpdateContainer(user, acct, cont string, policy, meta map[string]string, replace bool) error {
	if len(policy) == 0 && len(meta) == 0 && !replace {
		return nil
	}
	if err := CanWriteContainer(user, acct); err != nil {
		return err
	}
	return st.update(func(t *txn) error {
		c, err := t.container(acct, cont)
		if err != nil {
			return err
		}
		if len(policy) > 0 {
			if err := checkPolicy(policy); err != nil {
				return err
			}
			applyPolicy(c, policy, replace, acct)
		}
		if len(meta) > 0 || replace {
			m, err := mergeMeta(c.Meta, meta, replace)
			if err != nil {
				return err
			}
			c.Mtime = st.now()
			c.props.newVersion(&c.Meta, m, c.Mtime)
		}
		return t.putContainer(acct, cont, c)
	})
}

// Container is get_container_meta and get_container_policy; with
// objectMeta also list_container_meta (a walk over the container). With
// until it is the view of the container then: 404 if it did not exist
// yet; other users may not see its history.
func (st *Store) Container(user, acct, cont string, objectMeta bool, until Until) (*ContainerInfo, error) {
	var info *ContainerInfo
	err := st.view(func(t *txn) error {
		if err := t.canReadContainer(user, acct, cont); err != nil {
			return err
		}
		if user != acct && until.Set && until.Unix != 0 {
			return &ErrForbidden{Msg: "Accessing other account's historical information is not allowed"}
		}
		c, err := t.container(acct, cont)
		if err != nil {
			return err
		}
		info = &ContainerInfo{Name: cont, Mtime: c.Mtime, BlockSize: c.BlockSize, Owner: user == acct}
		keys := map[string]bool{}
		p := []byte(acct + sep + cont + sep)
		cur := t.objects.Cursor()
		for k, _ := cur.Seek(p); objectMeta && k != nil && bytes.HasPrefix(k, p); k, _ = cur.Next() {
			// Like list_container_meta, every object counts, whoever asks.
			v, err := t.current(k)
			if err != nil {
				return err
			}
			for mk := range v.Meta[DomainPithos] {
				if strings.HasPrefix(mk, "X-Object-Meta-") {
					keys[mk[len("X-Object-Meta-"):]] = true
				}
			}
		}
		for k := range keys {
			info.ObjectMeta = append(info.ObjectMeta, k)
		}
		sort.Strings(info.ObjectMeta)
		if user == acct {
			info.Count, info.Bytes = c.Count, c.Bytes
			info.Quota, info.Versioning, info.Project = c.Quota, c.Versioning, c.Project
			info.Meta = c.Meta
		}
		if until.Set {
			return t.containerAt(info, c, acct, cont, until, objectMeta)
		}
		return nil
	})
	return info, err
}

// DeleteContainer is container DELETE. With a delimiter only the contents go.
func (st *Store) DeleteContainer(user, acct, cont string, delimiter string) error {
	if err := CanWriteContainer(user, acct); err != nil {
		return err
	}
	return st.update(func(t *txn) error {
		c, err := t.container(acct, cont)
		if err != nil {
			return err
		}
		p := []byte(acct + sep + cont + sep)
		if delimiter != "" {
			var names []string
			cur := t.objects.Cursor()
			for k, _ := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = cur.Next() {
				names = append(names, string(k[len(p):]))
			}
			for _, n := range names {
				if err := t.deleteOne(user, acct, cont, n, st.now()); err != nil {
					return err
				}
			}
			return nil
		}
		if c.Count > 0 {
			return &ErrConflict{Msg: "Container is not empty"}
		}
		// Purge the history and deleted versions with the container.
		var keys [][]byte
		cur := t.versions.Cursor()
		for k, _ := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = cur.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := t.maps.Delete(k[len(k)-8:]); err != nil {
				return err
			}
			if err := t.versions.Delete(k); err != nil {
				return err
			}
		}
		if _, err := t.touchAccount(acct, st.now()); err != nil {
			return err
		}
		return t.containers.Delete(ckey(acct, cont))
	})
}
