package config

import (
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"
)

// Owners is a watch entry's `owners:` resolved to ids: a file is accepted
// when its owning user is one of Users or its group one of Groups.
type Owners struct {
	Users  map[uint32]string // uid → how it was written
	Groups map[uint32]string // gid → how it was written
}

// Allows reports whether a file owned by uid:gid is accepted. An empty
// Owners (no `owners:` configured) accepts every file.
func (o Owners) Allows(uid, gid uint32) bool {
	if len(o.Users) == 0 && len(o.Groups) == 0 {
		return true
	}
	_, u := o.Users[uid]
	_, g := o.Groups[gid]
	return u || g
}

// String lists the accepted owners for messages: "alice, group builders".
func (o Owners) String() string {
	var parts []string
	for _, n := range o.Users {
		parts = append(parts, "user "+n)
	}
	for _, n := range o.Groups {
		parts = append(parts, "group "+n)
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// ParseOwners resolves `owners:` entries: "user:NAME", "user:UID",
// "group:NAME", "group:GID", a bare number (a uid), or a bare name (a user
// if one has that name, else a group). Names are looked up now, so a typo is
// a configuration error rather than a folder that refuses everything.
func ParseOwners(entries []string) (Owners, error) {
	o := Owners{Users: map[uint32]string{}, Groups: map[uint32]string{}}
	var errs []error
	for _, raw := range entries {
		e := strings.TrimSpace(raw)
		kind, name, explicit := strings.Cut(e, ":")
		if !explicit {
			kind, name = "", e
		}
		if name == "" {
			errs = append(errs, fmt.Errorf("%q: empty", raw))
			continue
		}
		switch kind {
		case "user":
			id, err := lookupID(name, true)
			if err != nil {
				errs = append(errs, fmt.Errorf("%q: %w", raw, err))
				continue
			}
			o.Users[id] = name
		case "group":
			id, err := lookupID(name, false)
			if err != nil {
				errs = append(errs, fmt.Errorf("%q: %w", raw, err))
				continue
			}
			o.Groups[id] = name
		case "":
			if id, err := lookupID(name, true); err == nil {
				o.Users[id] = name
			} else if id, gerr := lookupID(name, false); gerr == nil {
				o.Groups[id] = name
			} else {
				errs = append(errs, fmt.Errorf("%q: no user or group of that name (write user:%s or group:%s with a numeric id if it exists elsewhere)", raw, name, name))
			}
		default:
			errs = append(errs, fmt.Errorf("%q: want NAME, ID, user:NAME|ID or group:NAME|ID", raw))
		}
	}
	return o, errors.Join(errs...)
}

func lookupID(name string, isUser bool) (uint32, error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(n), nil
	}
	var id string
	if isUser {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, err
		}
		id = u.Uid
	} else {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, err
		}
		id = g.Gid
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s has id %q, which is not a number", name, id)
	}
	return uint32(n), nil
}
