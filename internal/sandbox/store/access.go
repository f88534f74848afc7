package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// ---- permissions (modular.py _can_*; permissions.py access_*) ----

func isDirectoryType(typ string) bool {
	base, _, _ := strings.Cut(typ, ";")
	base = strings.TrimSpace(base)
	return base == "application/directory" || base == "application/folder"
}

// member reports whether user is in a sharing list: by name, "*", or as a
// member of an "owner:group" entry.
func (t *txn) member(list []string, user string) bool {
	for _, m := range list {
		if m == user || m == "*" {
			return true
		}
		owner, group, ok := strings.Cut(m, ":")
		if !ok {
			continue
		}
		a, found, err := t.account(owner)
		if err != nil || !found {
			continue
		}
		for _, u := range a.Groups[group] {
			if u == user {
				return true
			}
		}
	}
	return false
}

// permissionsPath finds the path whose sharing governs name: the object's own
// path, or the nearest ancestor that is a directory object with sharing.
func (t *txn) permissionsPath(acct, cont, name string) ([]byte, *Permissions, error) {
	parts := strings.Split(strings.TrimRight(name, "/"), "/")
	var cands []string
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		cands = append(cands, sub)
		if sub != name {
			cands = append(cands, sub+"/")
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(cands)))
	for _, c := range cands {
		k := okey(acct, cont, c)
		p, err := t.permissions(k)
		if err != nil {
			return nil, nil, err
		}
		if p == nil {
			continue
		}
		if c == name {
			return k, p, nil
		}
		v, err := t.current(k)
		if err != nil {
			return nil, nil, err
		}
		if v != nil && isDirectoryType(v.Type) {
			return k, p, nil
		}
	}
	return nil, nil, nil
}

func (t *txn) canReadObject(user, acct, cont, name string) error {
	if user == acct {
		return nil
	}
	if t.public.Get(okey(acct, cont, name)) != nil {
		return nil
	}
	k, p, err := t.permissionsPath(acct, cont, name)
	if err != nil {
		return err
	}
	if k == nil {
		return &ErrForbidden{Msg: "User does not have access to the object"}
	}
	if !t.member(p.Read, user) && !t.member(p.Write, user) {
		return &ErrForbidden{Msg: "User does not have read access to the object"}
	}
	return nil
}

func (t *txn) canWriteObject(user, acct, cont, name string) error {
	if user == acct {
		return nil
	}
	k, p, err := t.permissionsPath(acct, cont, name)
	if err != nil {
		return err
	}
	if k == nil {
		return &ErrForbidden{Msg: "User does not have access to the object"}
	}
	if !t.member(p.Write, user) {
		return &ErrForbidden{Msg: "User does not have write access to the object"}
	}
	return nil
}

// allowedAction is X-Object-Allowed-To for a non-owner.
func (t *txn) allowedAction(user, acct, cont, name string) string {
	_, p, err := t.permissionsPath(acct, cont, name)
	if err == nil && p != nil && t.member(p.Write, user) {
		return "write"
	}
	return "read"
}

// sharedPaths lists the object keys under prefix (acct\0 or acct\0cont\0…)
// that are shared with user (access_list_paths).
func (t *txn) sharedPaths(user string, prefix []byte) ([][]byte, error) {
	var out [][]byte
	c := t.perms.Cursor()
	for k, data := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, data = c.Next() {
		var p Permissions
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("sandbox: corrupt permissions %q: %w", k, err)
		}
		if user == "" || t.member(p.Read, user) || t.member(p.Write, user) {
			out = append(out, append([]byte(nil), k...))
		}
	}
	return out, nil
}

// allowedContainers are the containers of acct in which user has a share.
func (t *txn) allowedContainers(user, acct string) ([]string, error) {
	paths, err := t.sharedPaths(user, []byte(acct+sep))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range paths {
		_, cont, _ := splitOkey(k)
		if !seen[cont] {
			seen[cont] = true
			out = append(out, cont)
		}
	}
	sort.Strings(out)
	return out, nil
}

// allowedAccounts are the accounts in which user has a share.
func (t *txn) allowedAccounts(user string) ([]string, error) {
	paths, err := t.sharedPaths(user, nil)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range paths {
		acct, _, _ := splitOkey(k)
		if acct != user && !seen[acct] {
			seen[acct] = true
			out = append(out, acct)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (t *txn) canReadAccount(user, acct string) error {
	if user == acct {
		return nil
	}
	accts, err := t.allowedAccounts(user)
	if err != nil {
		return err
	}
	for _, a := range accts {
		if a == acct {
			return nil
		}
	}
	return &ErrForbidden{Msg: "User does not have read access to the account"}
}

func (t *txn) canReadContainer(user, acct, cont string) error {
	if user == acct {
		return nil
	}
	conts, err := t.allowedContainers(user, acct)
	if err != nil {
		return err
	}
	for _, c := range conts {
		if c == cont {
			return nil
		}
	}
	return &ErrForbidden{Msg: "User does not have read access to the container"}
}

// CanWriteContainer is can_write_container: only the account's owner may
// write into its containers, whatever the sharing of their objects.
func CanWriteContainer(user, acct string) error {
	if user != acct {
		return &ErrForbidden{Msg: "User does not have write access to the container"}
	}
	return nil
}

// accountUsage sums the bytes of the account's live objects.
func (t *txn) accountUsage(acct string) (count, bytesUsed int64, err error) {
	p := []byte(acct + sep)
	c := t.containers.Cursor()
	for k, data := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, data = c.Next() {
		var cr containerRec
		if err := json.Unmarshal(data, &cr); err != nil {
			return 0, 0, fmt.Errorf("sandbox: corrupt container %q: %w", k, err)
		}
		count++
		bytesUsed += cr.Bytes
	}
	return count, bytesUsed, nil
}
