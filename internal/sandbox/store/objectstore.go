package store

// ---- what Plankton and Astakos use (plankton.Objects, astakos.Usage) ----

func (t *txn) info(ok []byte, v *Version) (*ObjectInfo, error) {
	acct, cont, name := splitOkey(ok)
	oi := &ObjectInfo{
		Account: acct, Container: cont, Name: name, UUID: v.UUID, Serial: v.Serial,
		Mtime: float64(v.Mtime) / 1e6, Bytes: v.Bytes, Hashes: t.hashes(v), Hash: v.Hash,
		ContentType: v.Type, Checksum: v.Checksum, ModifiedBy: v.ModifiedBy, Available: v.Available,
		Meta: map[string]map[string]string{},
	}
	for d, m := range v.Meta {
		oi.Meta[d] = copyMeta(m)
	}
	p, err := t.permissions(ok)
	if err != nil {
		return nil, err
	}
	if p != nil {
		oi.Permissions = Permissions{Read: append([]string(nil), p.Read...), Write: append([]string(nil), p.Write...)}
	}
	if tok := t.publicToken(ok); tok != "" {
		oi.PublicURL = PublicPath(tok)
	}
	return oi, nil
}

// PublicPath is the path of a public object's URL below the service host.
func PublicPath(token string) string { return "/public/" + token }

// ObjectByPath returns the latest version of an object.
func (st *Store) ObjectByPath(user, account, container, name string) (*ObjectInfo, error) {
	var oi *ObjectInfo
	err := st.view(func(t *txn) error {
		if err := t.canReadObject(user, account, container, name); err != nil {
			return err
		}
		if _, err := t.container(account, container); err != nil {
			return err
		}
		ok := okey(account, container, name)
		v, err := t.current(ok)
		if err != nil {
			return err
		}
		if v == nil {
			return &ErrNotFound{Msg: "Object does not exist"}
		}
		oi, err = t.info(ok, v)
		return err
	})
	return oi, err
}

// ObjectByUUID resolves a live object by uuid, then checks read access.
func (st *Store) ObjectByUUID(user, uuid string) (*ObjectInfo, error) {
	u, valid := canonicalUUID(uuid)
	if !valid {
		return nil, &ErrNotFound{Msg: "No object found for this UUID."}
	}
	var oi *ObjectInfo
	err := st.view(func(t *txn) error {
		ok := t.uuids.Get([]byte(u))
		if ok == nil {
			return &ErrNotFound{Msg: "No object found for this UUID."}
		}
		ok = append([]byte(nil), ok...)
		acct, cont, name := splitOkey(ok)
		if err := t.canReadObject(user, acct, cont, name); err != nil {
			return err
		}
		v, err := t.current(ok)
		if err != nil {
			return err
		}
		if v == nil {
			return &ErrNotFound{Msg: "No object found for this UUID."}
		}
		oi, err = t.info(ok, v)
		return err
	})
	return oi, err
}

// UpdateObjectMeta writes one domain's metadata as a new version.
func (st *Store) UpdateObjectMeta(user, account, container, name, domain string, meta map[string]string, replace bool) error {
	_, err := st.UpdateMeta(user, account, container, name, domain, meta, replace)
	return err
}

// SetPermissions replaces the object's sharing (owner only).
func (st *Store) SetPermissions(user, account, container, name string, p Permissions) error {
	return st.setPermissions(user, account, container, name, &p)
}

// DomainObjects lists the live objects with metadata in domain that user may
// read: their own, and those shared with them or with everyone.
func (st *Store) DomainObjects(user, domain string) ([]*ObjectInfo, error) {
	var out []*ObjectInfo
	err := st.view(func(t *txn) error {
		c := t.objects.Cursor()
		for k, s := c.First(); k != nil; k, s = c.Next() {
			acct, cont, name := splitOkey(k)
			if acct != user {
				p, err := t.permissions(k)
				if err != nil {
					return err
				}
				if p == nil || (!t.member(p.Read, user) && !t.member(p.Write, user)) {
					continue
				}
			}
			var v Version
			if _, err := getJSON(t.versions, append(vprefix(k), s...), &v); err != nil {
				return err
			}
			if len(v.Meta[domain]) == 0 {
				continue
			}
			oi, err := t.info(okey(acct, cont, name), &v)
			if err != nil {
				return err
			}
			out = append(out, oi)
		}
		return nil
	})
	return out, err
}

// Usage returns the bytes of the account's live objects (pithos.diskspace).
func (st *Store) Usage(account string) (int64, error) {
	var used int64
	err := st.view(func(t *txn) error {
		var err error
		_, used, err = t.accountUsage(account)
		return err
	})
	return used, err
}
