package plankton

import (
	"net/http"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// Image members are the object's read share, without "*" (views.py
// list_image_members & co., backend.py add_user/remove_user/replace_users).

// listMembers is GET /images/<id>/members.
func (s *Handler) listMembers(w http.ResponseWriter, r *http.Request, u astakos.User, id string) {
	info, ok := s.imageObject(w, r, u, id)
	if !ok {
		return
	}
	members := []any{}
	for _, m := range withoutStar(info.Permissions.Read) {
		members = append(members, wire.Ordered{{"member_id", m}, {"can_share", false}})
	}
	wire.WriteJSON(w, http.StatusOK, wire.Ordered{{"members", members}})
}

// replaceMembers is PUT /images/<id>/members with {"memberships": [{"member_id": …}]}.
func (s *Handler) replaceMembers(w http.ResponseWriter, r *http.Request, u astakos.User, id string) {
	data, msg := wire.GetJSONBody(r)
	if msg != "" {
		plBadRequest(w, r, msg)
		return
	}
	obj, ok := data.(map[string]any)
	if !ok {
		// data.get on a non-dict raises AttributeError.
		wire.WriteFault(w, r, http.StatusInternalServerError, wire.FaultInternal, "Unexpected error", "")
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
	if err := s.store.SetPermissions(u.UUID, info.Account, info.Container, info.Name, store.Permissions{Read: read, Write: info.Permissions.Write}); err != nil {
		backendFault(w, r, err)
		return
	}
	s.stats.imageUpdates.Add(1)
	wire.WriteEmpty(w, http.StatusNoContent)
}

// changeMember is PUT (add) and DELETE (remove) /images/<id>/members/<member>.
// As in the real backend, the sharing is only written when it changes, so
// adding a present member or removing an absent one succeeds for any reader.
func (s *Handler) changeMember(w http.ResponseWriter, r *http.Request, u astakos.User, id, member string, add bool) {
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
		if err := s.store.SetPermissions(u.UUID, info.Account, info.Container, info.Name, store.Permissions{Read: next, Write: info.Permissions.Write}); err != nil {
			backendFault(w, r, err)
			return
		}
	}
	s.stats.imageUpdates.Add(1)
	wire.WriteEmpty(w, http.StatusNoContent)
}
