package plankton

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// registerImage is POST /images/: views.add_image then backend.register, with
// their checks in their order.
func (s *Handler) registerImage(w http.ResponseWriter, r *http.Request, u astakos.User) {
	params, err := headersToImageParams(r.Header)
	if err != nil {
		plBadRequest(w, r, err.Error())
		return
	}
	for k := range params {
		if !addFields[k] {
			plBadRequest(w, r, "Invalid parameters")
			return
		}
	}
	name, ok := params.str("name")
	if !ok {
		plBadRequest(w, r, "Image 'name' parameter is required")
		return
	}
	if name == "" {
		plBadRequest(w, r, "Invalid image name")
		return
	}
	delete(params, "name")
	location, ok := params.str("location")
	if !ok {
		plBadRequest(w, r, "'location' parameter is required")
		return
	}
	delete(params, "location")
	account, container, path, err := splitImageURL(location)
	switch {
	case errors.Is(err, errInvalidLocation):
		plBadRequest(w, r, fmt.Sprintf("Invalid location '%s'", location))
		return
	case err != nil:
		// The view only catches AssertionError: a decoding error escapes
		// as an unexpected one.
		wire.WriteFault(w, r, http.StatusInternalServerError, wire.FaultInternal, "Unexpected error", "")
		return
	}
	if msg := validateFields(params); msg != "" {
		plBadRequest(w, r, msg)
		return
	}

	// backend.register
	if store, ok := params.str("store"); ok && store != "pithos" {
		plBadRequest(w, r, fmt.Sprintf("Invalid store '%s'. Only 'pithos' store is supported", store))
		return
	}
	delete(params, "store")
	if _, ok := params["disk_format"]; !ok {
		params["disk_format"] = defaultDiskFormat
	}
	if _, ok := params["container_format"]; !ok {
		params["container_format"] = defaultContainer
	}
	info, err := s.store.ObjectByPath(u.UUID, account, container, path)
	if err != nil {
		backendFault(w, r, err)
		return
	}
	// Header values stay strings, and the backend wants an int equal to
	// the object's size: any X-Image-Meta-Size fails.
	if _, ok := params["size"]; ok {
		plBadRequest(w, r, "Invalid 'size' field")
		return
	}
	if sum, ok := params.str("checksum"); ok && sum != info.Hash {
		plBadRequest(w, r, "Invalid checksum field")
		return
	}
	delete(params, "checksum")
	public, _ := params["is_public"].(bool)
	delete(params, "is_public")
	read := []string{u.UUID}
	if public {
		read = append(read, "*")
	}
	// update_object_permissions comes first and is owner only.
	if u.UUID != account {
		wire.WriteFault(w, r, http.StatusForbidden, wire.FaultForbidden, "", "")
		return
	}
	meta := imageMetaFromParams(params)
	meta["name"] = name
	// str(time()): stored, never shown (see imageToDict).
	meta["created_at"] = strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 2, 64)
	prefixed, msg := prefixAndValidate(meta)
	if msg != "" {
		plBadRequest(w, r, msg)
		return
	}
	if err := s.store.SetPermissions(u.UUID, account, container, path, store.Permissions{Read: read}); err != nil {
		backendFault(w, r, err)
		return
	}
	if err := s.store.UpdateObjectMeta(u.UUID, account, container, path, store.DomainPlankton, prefixed, false); err != nil {
		// The real backend rolls the transaction back.
		_ = s.store.SetPermissions(u.UUID, account, container, path, info.Permissions)
		backendFault(w, r, err)
		return
	}
	img, ok := s.reloadImage(w, r, u, info.UUID)
	if !ok {
		return
	}
	s.stats.imageRegisters.Add(1)
	writeImageResponse(w, img)
}

// reloadImage is backend._get_image after a change.
func (s *Handler) reloadImage(w http.ResponseWriter, r *http.Request, u astakos.User, uuid string) (map[string]any, bool) {
	info, ok := s.imageObject(w, r, u, uuid)
	if !ok {
		return nil, false
	}
	return imageToDict(info), true
}

// imageMeta is HEAD /images/<id>.
func (s *Handler) imageMeta(w http.ResponseWriter, r *http.Request, u astakos.User, id string) {
	info, ok := s.imageObject(w, r, u, id)
	if !ok {
		return
	}
	writeImageResponse(w, imageToDict(info))
}

// updateImage is PUT /images/<id>: views.update_image and
// backend.update_metadata.
func (s *Handler) updateImage(w http.ResponseWriter, r *http.Request, u astakos.User, id string) {
	params, err := headersToImageParams(r.Header)
	if err != nil {
		plBadRequest(w, r, err.Error())
		return
	}
	for k := range params {
		if !updateFields[k] {
			plBadRequest(w, r, "Invalid metadata")
			return
		}
	}
	if msg := validateFields(params); msg != "" {
		plBadRequest(w, r, msg)
		return
	}
	info, ok := s.imageObject(w, r, u, id)
	if !ok {
		return
	}
	var perms *store.Permissions
	if public, ok := params["is_public"].(bool); ok {
		delete(params, "is_public")
		// update_object_permissions runs before the metadata is validated,
		// and only the owner may change sharing.
		if u.UUID != info.Account {
			wire.WriteFault(w, r, http.StatusForbidden, wire.FaultForbidden, "", "")
			return
		}
		// "*" toggles; other readers and all writers stay.
		read := withoutStar(info.Permissions.Read)
		if public {
			read = append(read, "*")
		}
		perms = &store.Permissions{Read: read, Write: info.Permissions.Write}
	}
	meta, msg := prefixAndValidate(imageMetaFromParams(params))
	if msg != "" {
		plBadRequest(w, r, msg)
		return
	}
	if perms != nil {
		if err := s.store.SetPermissions(u.UUID, info.Account, info.Container, info.Name, *perms); err != nil {
			backendFault(w, r, err)
			return
		}
	}
	s.finishUpdate(w, r, u, id, info, meta, perms != nil)
}

// finishUpdate merges meta into the plankton domain and answers with the
// image. Any failure undoes what was written, as the real backend's
// transaction rollback does.
func (s *Handler) finishUpdate(w http.ResponseWriter, r *http.Request, u astakos.User, id string, info *store.ObjectInfo, meta map[string]string, permsChanged bool) {
	acct, cont, name := info.Account, info.Container, info.Name
	rollbackPerms := func() {
		if permsChanged {
			_ = s.store.SetPermissions(u.UUID, acct, cont, name, info.Permissions)
		}
	}
	if err := s.store.UpdateObjectMeta(u.UUID, acct, cont, name, store.DomainPlankton, meta, false); err != nil {
		rollbackPerms()
		backendFault(w, r, err)
		return
	}
	fresh, err := s.store.ObjectByUUID(u.UUID, info.UUID)
	if err != nil {
		backendFault(w, r, err)
		return
	}
	if _, ok := fresh.Meta[store.DomainPlankton][planktonPrefix+"name"]; !ok {
		// An empty name deleted plankton:name: _get_image fails and the
		// whole update is rolled back.
		old := map[string]string{}
		for k, v := range info.Meta[store.DomainPlankton] {
			old[k] = v
		}
		_ = s.store.UpdateObjectMeta(u.UUID, acct, cont, name, store.DomainPlankton, old, true)
		rollbackPerms()
		wire.WriteFault(w, r, http.StatusNotFound, wire.FaultNotFound, fmt.Sprintf("Object '%s' does not exist.", id), "")
		return
	}
	s.stats.imageUpdates.Add(1)
	writeImageResponse(w, imageToDict(fresh))
}

// unregisterImage is DELETE /images/<id>: the plankton domain is cleared; the
// object, its UUID and its sharing stay.
func (s *Handler) unregisterImage(w http.ResponseWriter, r *http.Request, u astakos.User, id string) {
	info, ok := s.imageObject(w, r, u, id)
	if !ok {
		return
	}
	if err := s.store.UpdateObjectMeta(u.UUID, info.Account, info.Container, info.Name, store.DomainPlankton, map[string]string{}, true); err != nil {
		backendFault(w, r, err)
		return
	}
	s.stats.imageUpdates.Add(1)
	wire.WriteEmpty(w, http.StatusNoContent)
}

// errSortKey is the KeyError of itemgetter on an image lacking the sort key.
var errSortKey = errors.New("sort key missing")

// listImageDicts is backend._list_images: every image u can see, sorted.
// Filters are parsed by the view but never applied ("TODO: Use filters").
func (s *Handler) listImageDicts(u astakos.User, sortKey, sortDir string) ([]map[string]any, error) {
	objs, err := s.store.DomainObjects(u.UUID, store.DomainPlankton)
	if err != nil {
		return nil, err
	}
	images := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		img := imageToDict(o)
		if _, ok := img[sortKey]; !ok {
			return nil, errSortKey
		}
		images = append(images, img)
	}
	desc := sortDir == "desc"
	// Python's sort is stable, also with reverse=True.
	sort.SliceStable(images, func(i, j int) bool {
		c := compareValues(images[i][sortKey], images[j][sortKey])
		if desc {
			return c > 0
		}
		return c < 0
	})
	return images, nil
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return strings.Compare(x, y)
	case int64:
		y, _ := b.(int64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	case bool:
		y, _ := b.(bool)
		switch {
		case !x && y:
			return -1
		case x && !y:
			return 1
		}
	}
	return 0
}

// listImages is GET /images/ and /images/detail.
func (s *Handler) listImages(w http.ResponseWriter, r *http.Request, u astakos.User, detail bool) {
	q := r.URL.Query()
	param := func(k string) (string, bool) {
		v, ok := q[k]
		if !ok || len(v) == 0 {
			return "", false
		}
		return v[len(v)-1], true
	}
	sortKey, ok := param("sort_key")
	if !ok {
		sortKey = "created_at"
	}
	sortDir, ok := param("sort_dir")
	if !ok {
		sortDir = "desc"
	}
	if !sortKeyOptions[sortKey] {
		plBadRequest(w, r, "Invalid 'sort_key'")
		return
	}
	if sortDir != "asc" && sortDir != "desc" {
		plBadRequest(w, r, "Invalid 'sort_dir'")
		return
	}
	for _, k := range []string{"size_max", "size_min"} {
		if v, ok := param(k); ok && !reSizeInt.MatchString(v) {
			plBadRequest(w, r, "Malformed request.")
			return
		}
	}
	images, err := s.listImageDicts(u, sortKey, sortDir)
	if err != nil {
		backendFault(w, r, err)
		return
	}
	fields := listFields
	if detail {
		fields = fieldSet(detailFields...)
	}
	out := make([]any, 0, len(images))
	for _, img := range images {
		for k := range img {
			if !fields[k] {
				delete(img, k)
			}
		}
		out = append(out, img)
	}
	// The real view dumps with indent=settings.DEBUG; whitespace aside, the
	// document is the same.
	wire.WriteJSON(w, http.StatusOK, map[string]any{"images": out})
}

// listSharedImages is GET /shared-images/<member>: the requester's visible,
// non-public images owned by member.
func (s *Handler) listSharedImages(w http.ResponseWriter, r *http.Request, u astakos.User, member string) {
	images, err := s.listImageDicts(u, "created_at", "desc")
	if err != nil {
		backendFault(w, r, err)
		return
	}
	out := []any{}
	for _, img := range images {
		if img["is_public"] == false && img["owner"] == member {
			out = append(out, wire.Ordered{{"image_id", img["id"]}, {"can_share", false}})
		}
	}
	wire.WriteJSON(w, http.StatusOK, wire.Ordered{{"shared_images", out}})
}
