package sandbox

import (
	"net/http"
)

// Image members are the object's read share, without "*" (views.py
// list_image_members & co., backend.py add_user/remove_user/replace_users).

// listMembers is GET /images/<id>/members.
func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, u User, id string) {
	info, ok := s.imageObject(w, r, u, id)
	if !ok {
		return
	}
	members := []any{}
	for _, m := range withoutStar(info.Permissions.Read) {
		members = append(members, ordered{{"member_id", m}, {"can_share", false}})
	}
	writeJSON(w, http.StatusOK, ordered{{"members", members}})
}

// replaceMembers is PUT /images/<id>/members with {"memberships": [{"member_id": …}]}.
func (s *Server) replaceMembers(w http.ResponseWriter, r *http.Request, u User, id string) {
	data, msg := getJSONBody(r)
	if msg != "" {
		plBadRequest(w, r, msg)
		return
	}
	obj, ok := data.(map[string]any)
	if !ok {
		// data.get on a non-dict raises AttributeError.
		writeFault(w, r, http.StatusInternalServerError, faultInternal, "Unexpected error", "")
		return
	}
	raw := obj["memberships"]
	if raw == nil {
		plBadRequest(w, r, "Malformed request. Missing attribute 'memberships'.")
		return
	}
	list, ok := raw.([]any)
	if !ok {
		plBadRequest(w, r, "Malformed request. Invalid 'memberships' field")
		return
	}
	var members []any
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			plBadRequest(w, r, "Invalid 'memberships' field")
			return
		}
		id := m["member_id"]
		if id == nil {
			plBadRequest(w, r, "Malformed request. Missing attribute 'member_id'.")
			return
		}
		members = append(members, id)
	}
	info, ok := s.imageObject(w, r, u, id)
	if !ok {
		return
	}
	read := []string{}
	seen := map[string]bool{}
	for _, m := range members {
		name, ok := m.(string)
		if !ok {
			// Pithos refuses the sharing list: ValueError → 400.
			plBadRequest(w, r, "")
			return
		}
		if !seen[name] {
			seen[name] = true
			read = append(read, name)
		}
	}
	if containsStr(info.Permissions.Read, "*") && !seen["*"] {
		read = append(read, "*")
	}
	if err := s.store.SetPermissions(u.UUID, info.Account, info.Container, info.Name, Permissions{Read: read, Write: info.Permissions.Write}); err != nil {
		backendFault(w, r, err)
		return
	}
	s.stats.imageUpdates.Add(1)
	writeEmpty(w, http.StatusNoContent)
}

// changeMember is PUT (add) and DELETE (remove) /images/<id>/members/<member>.
// As in the real backend, the sharing is only written when it changes, so
// adding a present member or removing an absent one succeeds for any reader.
func (s *Server) changeMember(w http.ResponseWriter, r *http.Request, u User, id, member string, add bool) {
	info, ok := s.imageObject(w, r, u, id)
	if !ok {
		return
	}
	read := info.Permissions.Read
	present := containsStr(read, member)
	if add != present {
		var next []string
		if add {
			next = append(append([]string{}, read...), member)
		} else {
			next = []string{}
			for _, m := range read {
				if m != member {
					next = append(next, m)
				}
			}
		}
		if err := s.store.SetPermissions(u.UUID, info.Account, info.Container, info.Name, Permissions{Read: next, Write: info.Permissions.Write}); err != nil {
			backendFault(w, r, err)
			return
		}
	}
	s.stats.imageUpdates.Add(1)
	writeEmpty(w, http.StatusNoContent)
}
