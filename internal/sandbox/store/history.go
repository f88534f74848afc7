package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// History: the real backend keeps every version of every node (account,
// container, object) with its mtime, in three clusters: normal (current),
// history (superseded) and deleted (what a delete leaves). ?until views
// read the latest version before a time; DELETE with ?until purges versions
// up to a time (snf-pithos-backend modular.py, lib/sqlalchemy/node.py).

// Until is the ?until of a history view or purge: Unix seconds, when Set
// (get_int_parameter: a non-negative integer, anything else is no until).
type Until struct {
	Set  bool
	Unix int64
}

// before is until in the microseconds of version mtimes.
func (u Until) before() int64 {
	if u.Unix > math.MaxInt64/1000000 {
		return math.MaxInt64
	}
	return u.Unix * 1e6
}

// newVersion records a change of an account's or container's own metadata:
// the current version joins the history (_put_metadata →
// _put_version_duplicate).
func (p *props) newVersion(meta *map[string]string, next map[string]string, now int64) {
	p.History = append(p.History, propVersion{Mtime: p.MetaMtime, Meta: *meta})
	*meta, p.MetaMtime = next, now
}

// at is _get_properties(node, until): the version current just before
// before (version_lookup takes the greatest serial with mtime < before), its
// mtime and meta; ok is false when the node had no version yet.
func (p *props) at(meta map[string]string, before int64) (mtime int64, m map[string]string, ok bool) {
	if p.MetaMtime < before {
		return p.MetaMtime, meta, true
	}
	for i := len(p.History) - 1; i >= 0; i-- {
		if h := p.History[i]; h.Mtime < before {
			return h.Mtime, h.Meta, true
		}
	}
	return 0, nil, false
}

// eachVersionsOf calls fn with the versions of every object under prefix
// (acct\0 or acct\0cont\0…), one object at a time in name order, oldest
// version first.
func (t *txn) eachVersionsOf(prefix []byte, fn func(ok []byte, vs []*Version) error) error {
	var ok []byte
	var vs []*Version
	flush := func() error {
		if ok == nil {
			return nil
		}
		err := fn(ok, vs)
		ok, vs = nil, nil
		return err
	}
	c := t.versions.Cursor()
	for k, data := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, data = c.Next() {
		if len(k) < 9 || k[len(k)-9] != 0 {
			continue
		}
		key := k[:len(k)-9]
		if ok != nil && !bytes.Equal(ok, key) {
			if err := flush(); err != nil {
				return err
			}
		}
		if ok == nil {
			ok = append([]byte(nil), key...)
		}
		var v Version
		if err := json.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("sandbox: corrupt version %q: %w", k, err)
		}
		vs = append(vs, &v)
	}
	return flush()
}

// latestBefore is the version of an object current just before before: the
// greatest serial with mtime < before, or nil. A deletion marker counts (the
// object was deleted then): callers skip it.
func latestBefore(vs []*Version, before int64) *Version {
	var best *Version
	for _, v := range vs {
		if v.Mtime < before && (best == nil || v.Serial > best.Serial) {
			best = v
		}
	}
	return best
}

// objectsAt is statistics_latest(node, until, CLUSTER_DELETED) over the
// objects under prefix: how many existed (their latest version before until
// is not a deletion), their bytes, their latest mtime, and (with keys) the
// X-Object-Meta keys they had then (latest_attribute_keys).
func (t *txn) objectsAt(prefix []byte, before int64, keys map[string]bool) (count, size, mtime int64, err error) {
	err = t.eachVersionsOf(prefix, func(_ []byte, vs []*Version) error {
		v := latestBefore(vs, before)
		if v == nil || v.Deleted {
			return nil
		}
		count++
		size += v.Bytes
		mtime = max(mtime, v.Mtime)
		if keys != nil {
			for mk := range v.Meta[DomainPithos] {
				if strings.HasPrefix(mk, "X-Object-Meta-") {
					keys[mk[len("X-Object-Meta-"):]] = true
				}
			}
		}
		return nil
	})
	return count, size, mtime, err
}

// accountAt fills an owner's AccountInfo as of until (get_account_meta with
// until): the account meta then, the containers that existed then, and
// X-Account-Until-Timestamp, the last modification before until. Bytes
// stay the current usage: with an external quotaholder (Astakos) the real
// server reports the quota usage, which has no history.
func (t *txn) accountAt(info *AccountInfo, a *accountRec, acct string, until Until) error {
	before := until.before()
	pm, meta, ok := a.props.at(a.Meta, before)
	info.Meta, info.Containers = nil, 0
	var tstamp int64
	if ok {
		info.Meta = meta
		tstamp = pm
		p := []byte(acct + sep)
		c := t.containers.Cursor()
		for k, data := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, data = c.Next() {
			var cr containerRec
			if err := json.Unmarshal(data, &cr); err != nil {
				return fmt.Errorf("sandbox: corrupt container %q: %w", k, err)
			}
			if cm, _, existed := cr.props.at(cr.Meta, before); existed {
				info.Containers++
				tstamp = max(tstamp, cm)
			}
		}
		_, _, om, err := t.objectsAt(p, before, nil)
		if err != nil {
			return err
		}
		tstamp = max(tstamp, om)
	} else {
		// No account then: _get_properties fails, mtime = until, and
		// statistics_latest finds nothing.
		pm = before
		tstamp = before
	}
	info.Until, info.HasUntil = tstamp, true
	info.Mtime = max(info.Mtime, pm)
	return nil
}

// containerAt fills a ContainerInfo as of until (get_container_meta and
// list_container_meta with until). A container created after until did not
// exist then: 404.
func (t *txn) containerAt(info *ContainerInfo, c *containerRec, acct, cont string, until Until, objectMeta bool) error {
	before := until.before()
	pm, meta, ok := c.props.at(c.Meta, before)
	if !ok {
		return &ErrNotFound{Msg: "Path does not exist"}
	}
	var keys map[string]bool
	if objectMeta {
		keys = map[string]bool{}
	}
	count, size, om, err := t.objectsAt([]byte(acct+sep+cont+sep), before, keys)
	if err != nil {
		return err
	}
	info.ObjectMeta = sortedKeys(keys)
	info.Mtime = max(info.Mtime, pm)
	if info.Owner {
		info.Count, info.Bytes, info.Meta = count, size, meta
		info.Until, info.HasUntil = max(pm, om), true
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PurgeObject is object DELETE with ?until (modular.py _delete_object with
// until): every version of the object last modified at or before until is
// removed, whatever its cluster (node_purge on normal, history and
// deleted), and nothing newer. Purging the current version removes the
// object (and its sharing); an object with a newer current version keeps
// it and its content. A path that never held an object is not an error,
// and ?delimiter plays no part.
func (st *Store) PurgeObject(user, acct, cont, name string, until Until) error {
	if user != acct {
		return &ErrForbidden{Msg: ""}
	}
	return st.update(func(t *txn) error {
		c, err := t.container(acct, cont)
		if err != nil {
			return err
		}
		ok := okey(acct, cont, name)
		vs, err := t.versionsOf(ok)
		if err != nil || len(vs) == 0 {
			return err
		}
		var cur int64 = -1
		if s := t.objects.Get(ok); s != nil {
			cur = int64(binary.BigEndian.Uint64(s))
		}
		before := until.before()
		for _, v := range vs {
			if v.Mtime > before {
				continue
			}
			if v.Serial == cur {
				if err := t.objects.Delete(ok); err != nil {
					return err
				}
				if err := t.dropUUID(v.UUID, ok); err != nil {
					return err
				}
				c.Count--
				c.Bytes -= v.Bytes
				c.Mtime = max(c.Mtime, st.now())
				cur = -1
			}
			if err := t.removeVersion(ok, v.Serial); err != nil {
				return err
			}
		}
		if cur < 0 {
			if err := t.clearAccess(ok); err != nil {
				return err
			}
		}
		return t.putContainer(acct, cont, c)
	})
}

// PurgeContainer is container DELETE with ?until (modular.py
// delete_container with until): the history and deletion versions of the
// container's objects last modified at or before until are removed
// (node_purge_children on the history and deleted clusters). The container
// and its current objects stay, so a container that is not empty is not
// an error.
func (st *Store) PurgeContainer(user, acct, cont string, until Until) error {
	if err := CanWriteContainer(user, acct); err != nil {
		return err
	}
	return st.update(func(t *txn) error {
		if _, err := t.container(acct, cont); err != nil {
			return err
		}
		before := until.before()
		type doomed struct {
			ok     []byte
			serial int64
		}
		var purge []doomed
		err := t.eachVersionsOf([]byte(acct+sep+cont+sep), func(ok []byte, vs []*Version) error {
			var cur int64 = -1
			if s := t.objects.Get(ok); s != nil {
				cur = int64(binary.BigEndian.Uint64(s))
			}
			for _, v := range vs {
				if v.Serial != cur && v.Mtime <= before {
					purge = append(purge, doomed{ok, v.Serial})
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, d := range purge {
			if err := t.removeVersion(d.ok, d.serial); err != nil {
				return err
			}
		}
		return nil
	})
}
