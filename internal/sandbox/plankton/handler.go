package plankton

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// Plankton, the Cyclades image service (synnefo/plankton/views.py, backend.py
// and urls.py). An image is a Pithos object with metadata in the plankton
// domain; its id is the object's UUID.

// Field sets of views.py.
var (
	planktonFields = fieldSet("name", "disk_format", "container_format", "size", "checksum", "location",
		"created_at", "updated_at", "deleted_at", "status", "is_public", "owner", "properties", "id",
		"is_snapshot", "description", "store")
	addFields = fieldSet("name", "id", "store", "disk_format", "container_format", "size", "checksum",
		"is_public", "owner", "properties", "location")
	updateFields = fieldSet("name", "disk_format", "container_format", "is_public", "owner", "properties", "status")
	// detailFields is ordered: the HEAD/POST/PUT headers follow it.
	detailFields = []string{"name", "disk_format", "container_format", "size", "checksum", "location",
		"created_at", "updated_at", "deleted_at", "status", "is_public", "owner", "properties", "id",
		"is_snapshot", "description"}
	listFields     = fieldSet("status", "name", "disk_format", "container_format", "size", "id")
	sortKeyOptions = fieldSet("id", "name", "status", "size", "disk_format", "container_format", "created_at", "updated_at")
	// planktonMeta are the plankton:<key> entries image_to_dict copies into
	// the image (created_at is stored but never shown).
	planktonMeta = fieldSet("container_format", "disk_format", "name", "status", "created_at", "volume_id", "description")
	diskFormats  = []string{"diskdump", "extdump", "ntfsdump"}
	containerFmt = []string{"aki", "ari", "ami", "bare", "ovf"}
)

const (
	planktonPrefix = "plankton:"
	propertyPrefix = "property:"
	// maxMetaKeyLength is MAX_META_KEY_LENGTH = 128 - len("plankton") -
	// len("property:"), compared with the whole prefixed key.
	maxMetaKeyLength   = 128 - len("plankton") - len(propertyPrefix)
	maxMetaValueLength = 256
	defaultDiskFormat  = "diskdump"
	defaultContainer   = "bare"
)

// Routes of plankton/urls.py, matched against the path after "image/v1.0/"
// or "image/v1/". Python's \w without re.UNICODE is ASCII, as Go's is.
var (
	reImages       = regexp.MustCompile(`^images(?:/)?$`)
	reImagesDetail = regexp.MustCompile(`^images/detail$`)
	reImage        = regexp.MustCompile(`^images/([\w-]+)$`)
	reImageMembers = regexp.MustCompile(`^images/([\w-]+)/members$`)
	reImageMember  = regexp.MustCompile(`^images/([\w-]+)/members/([\w@._-]+)$`)
	reSharedImages = regexp.MustCompile(`^shared-images/([\w@._-]+)$`)
	reVersionsRoot = regexp.MustCompile(`^(?:.json)?$`)
	reV10          = regexp.MustCompile(`^v1.0/`)
	reV1           = regexp.MustCompile(`^v1/`)
	reSizeInt      = regexp.MustCompile(`^\s*[+-]?[0-9]+\s*$`)
)

func fieldSet(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// Images serves the image API; rest is the path after /image.
func (s *Handler) Images(w http.ResponseWriter, r *http.Request, rest string) {
	if rest == "" {
		s.planktonVersions(w, r)
		return
	}
	p, ok := strings.CutPrefix(rest, "/")
	if !ok {
		wire.EndpointNotFound(w, r)
		return
	}
	switch {
	case reVersionsRoot.MatchString(p) || strings.HasPrefix(p, "versions"):
		s.planktonVersions(w, r)
	case reV10.MatchString(p):
		s.servePlanktonV1(w, r, p[len("v1.0/"):])
	case reV1.MatchString(p):
		s.servePlanktonV1(w, r, p[len("v1/"):])
	default:
		wire.EndpointNotFound(w, r)
	}
}

func (s *Handler) servePlanktonV1(w http.ResponseWriter, r *http.Request, p string) {
	var m []string
	switch {
	case reImages.MatchString(p):
		switch r.Method {
		case http.MethodGet:
			s.withUser(w, r, func(u astakos.User) { s.listImages(w, r, u, false) })
		case http.MethodPost:
			s.withUser(w, r, func(u astakos.User) { s.registerImage(w, r, u) })
		default:
			djangoNotAllowed(w, http.MethodGet, http.MethodPost)
		}
	case reImagesDetail.MatchString(p):
		if r.Method != http.MethodGet {
			wire.NotAllowed(w, r, http.MethodGet)
			return
		}
		s.withUser(w, r, func(u astakos.User) { s.listImages(w, r, u, true) })
	case matchInto(reImage, p, &m):
		id := m[1]
		switch r.Method {
		case http.MethodGet:
			// Downloading through Plankton was never implemented.
			s.withUser(w, r, func(astakos.User) { wire.WriteEmpty(w, http.StatusNotImplemented) })
		case http.MethodHead:
			s.withUser(w, r, func(u astakos.User) { s.imageMeta(w, r, u, id) })
		case http.MethodPut:
			s.withUser(w, r, func(u astakos.User) { s.updateImage(w, r, u, id) })
		case http.MethodDelete:
			s.withUser(w, r, func(u astakos.User) { s.unregisterImage(w, r, u, id) })
		default:
			djangoNotAllowed(w, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete)
		}
	case matchInto(reImageMembers, p, &m):
		id := m[1]
		switch r.Method {
		case http.MethodGet:
			s.withUser(w, r, func(u astakos.User) { s.listMembers(w, r, u, id) })
		case http.MethodPut:
			s.withUser(w, r, func(u astakos.User) { s.replaceMembers(w, r, u, id) })
		default:
			djangoNotAllowed(w, http.MethodGet, http.MethodPut)
		}
	case matchInto(reImageMember, p, &m):
		id, member := m[1], m[2]
		switch r.Method {
		case http.MethodDelete:
			s.withUser(w, r, func(u astakos.User) { s.changeMember(w, r, u, id, member, false) })
		case http.MethodPut:
			s.withUser(w, r, func(u astakos.User) { s.changeMember(w, r, u, id, member, true) })
		default:
			djangoNotAllowed(w, http.MethodDelete, http.MethodPut)
		}
	case matchInto(reSharedImages, p, &m):
		if r.Method != http.MethodGet {
			wire.NotAllowed(w, r, http.MethodGet)
			return
		}
		member := m[1]
		s.withUser(w, r, func(u astakos.User) { s.listSharedImages(w, r, u, member) })
	default:
		wire.EndpointNotFound(w, r)
	}
}

func matchInto(re *regexp.Regexp, p string, m *[]string) bool {
	*m = re.FindStringSubmatch(p)
	return *m != nil
}

// withUser runs fn for an authenticated request; authenticate answers 401
// itself otherwise.
func (s *Handler) withUser(w http.ResponseWriter, r *http.Request, fn func(astakos.User)) {
	if u, ok := s.users.Authenticate(w, r); ok {
		fn(u)
	}
}

// djangoNotAllowed is Django's HttpResponseNotAllowed, which the urls.py
// demultiplexers return before any API wrapper runs: 405, an empty HTML body
// and the methods joined with ", ".
func djangoNotAllowed(w http.ResponseWriter, allow ...string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusMethodNotAllowed)
}

func (s *Handler) planktonVersions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		wire.NotAllowed(w, r, http.MethodGet)
		return
	}
	root := wire.BaseURL(r) + "/image"
	mediaTypes := []any{wire.Ordered{{"base", "application/json"}, {"type", "application/vnd.openstack.compute.v2+json"}}}
	version := func(id string) wire.Ordered {
		return wire.Ordered{
			{"id", id},
			{"status", "CURRENT"},
			{"links", []any{wire.Ordered{{"rel", "self"}, {"href", root + "/" + id + "/"}}}},
			{"media_types", mediaTypes},
		}
	}
	wire.WriteJSON(w, http.StatusOK, wire.Ordered{{"versions", []any{version("v1.0"), version("v1")}}})
}

// planktonNormalize is headers_to_image_params' normalize: lowercase, with every
// ASCII punctuation character replaced by '_'.
func planktonNormalize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r) {
			b.WriteByte('_')
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// imageParams is the result of headers_to_image_params: "is_public" is a
// bool, "properties" a map[string]string, every other value a string, as in
// the Python view (so "size" is never an int).
type imageParams map[string]any

//lint:ignore ST1005 the real server's message, byte for byte
var errNotUTF8 = errors.New("Could not decode request as UTF-8 string")

const (
	metaPrefix         = "X_IMAGE_META_"
	metaPropertyPrefix = "X_IMAGE_META_PROPERTY_"
)

// headersToImageParams reads the X-Image-Meta-* headers as Django sees them in
// request.META: names uppercased with '-' turned into '_'.
func headersToImageParams(h http.Header) (imageParams, error) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	// Deterministic when two headers normalise to the same key.
	sort.Strings(names)
	params := imageParams{}
	props := map[string]string{}
	for _, name := range names {
		key := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if !strings.HasPrefix(key, metaPrefix) {
			continue
		}
		val := strings.Join(h[name], ",")
		if strings.HasPrefix(key, metaPropertyPrefix) {
			pk := wire.Unquote(key[len(metaPropertyPrefix):])
			pv := wire.Unquote(val)
			if !utf8.ValidString(pk) || !utf8.ValidString(pv) {
				return nil, errNotUTF8
			}
			props[planktonNormalize(pk)] = pv
			continue
		}
		k := key[len(metaPrefix):]
		if !utf8.ValidString(k) {
			return nil, errNotUTF8
		}
		k = planktonNormalize(k)
		if !planktonFields[k] {
			continue
		}
		switch k {
		case "name":
			v := wire.Unquote(val)
			if !utf8.ValidString(v) {
				return nil, errNotUTF8
			}
			params[k] = v
		case "is_public":
			params[k] = strings.ToLower(val) == "true"
		default:
			params[k] = val
		}
	}
	params["properties"] = props
	return params, nil
}

func (p imageParams) str(k string) (string, bool) {
	v, ok := p[k]
	if !ok {
		return "", false
	}
	s, _ := v.(string)
	return s, true
}

// validateFields is views.validate_fields; it returns the fault message.
func validateFields(p imageParams) string {
	if _, ok := p["id"]; ok {
		return "Setting the image ID is not supported"
	}
	// STORE_TYPES is the string 'pithos', not a tuple: this is a substring
	// test, so "pit" passes here and fails in the backend.
	if v, ok := p.str("store"); ok && !strings.Contains("pithos", v) {
		return fmt.Sprintf("Invalid store type '%s'", v)
	}
	if v, ok := p.str("disk_format"); ok && !containsStr(diskFormats, v) {
		return fmt.Sprintf("Invalid disk format '%s'", v)
	}
	if v, ok := p.str("container_format"); ok && !containsStr(containerFmt, v) {
		return fmt.Sprintf("Invalid container format '%s'", v)
	}
	return ""
}

func containsStr(list []string, v string) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}

var (
	errInvalidLocation = errors.New("invalid location")
	errLocationUTF8    = errors.New("location is not UTF-8")
)

// splitImageURL is backend.split_url: "pithos:" + "//" + account/container/path,
// each part URL-unquoted. The empty second part is not checked.
func splitImageURL(url string) (account, container, path string, err error) {
	t := strings.SplitN(url, "/", 5)
	if t[0] != "pithos:" || len(t) != 5 {
		return "", "", "", errInvalidLocation
	}
	parts := t[2:5]
	for i, p := range parts {
		parts[i] = wire.Unquote(p)
		if !utf8.ValidString(parts[i]) {
			return "", "", "", errLocationUTF8
		}
	}
	return parts[0], parts[1], parts[2], nil
}

// createImageURL is backend.create_url.
func createImageURL(account, container, name string) string {
	return "pithos://" + wire.Quote(account, "/") + "/" + wire.Quote(container, "/") + "/" + wire.Quote(name, "/")
}

// planktonUUID is Python's uuid.UUID(s) as the Pithos backend applies it to
// image ids: hyphens anywhere, 32 hex digits (int(x, 16) also takes a "0x"
// prefix), canonical lowercase form. ok is false for a ValueError.
func planktonUUID(s string) (string, bool) {
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return "", false
	}
	if strings.HasPrefix(h, "0x") || strings.HasPrefix(h, "0X") {
		h = "00" + h[2:]
	}
	for i := 0; i < len(h); i++ {
		if !wire.IsHex(h[i]) {
			return "", false
		}
	}
	h = strings.ToLower(h)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
}

// planktonTimestamp is strftime('%Y-%m-%d %H:%M:%S', gmtime(t)).
func planktonTimestamp(t float64) string {
	return time.Unix(int64(math.Floor(t)), 0).UTC().Format("2006-01-02 15:04:05")
}

// objectStatus is MAP_TO_OBJ_STATES of the object's availability.
func objectStatus(available int) string {
	switch available {
	case 1:
		return "AVAILABLE"
	case 0:
		return "UNAVAILABLE"
	case -1:
		return "ERROR"
	}
	return "UNKNOWN"
}

// imageToDict is backend.image_to_dict: the image as a dict of Python-typed
// values (string, int64, bool, map[string]string, []string).
func imageToDict(o *store.ObjectInfo) map[string]any {
	read := o.Permissions.Read
	var users []string
	public := false
	for _, u := range read {
		if u == "*" {
			public = true
		} else {
			users = append(users, u)
		}
	}
	ts := planktonTimestamp(o.Mtime)
	img := map[string]any{
		"id":          o.UUID,
		"checksum":    o.Hash,
		"location":    createImageURL(o.Account, o.Container, o.Name),
		"size":        o.Bytes,
		"owner":       o.Account,
		"store":       "pithos",
		"is_snapshot": false,
		"status":      objectStatus(o.Available),
		"is_public":   public,
		"users":       users,
		// created_at is looked up under an unprefixed key in a dict of
		// prefixed ones, so it always falls back to the version timestamp.
		"created_at": ts,
		"updated_at": ts,
		"deleted_at": "",
	}
	meta := o.Meta[store.DomainPlankton]
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	props := map[string]string{}
	for _, k := range keys {
		v := meta[k]
		if !strings.HasPrefix(k, planktonPrefix) {
			continue
		}
		// str.replace without a count: every occurrence goes.
		key := strings.ReplaceAll(k, planktonPrefix, "")
		switch {
		case planktonMeta[key]:
			if key != "created_at" {
				img[key] = v
			}
		case strings.HasPrefix(key, propertyPrefix):
			props[strings.ReplaceAll(key, propertyPrefix, "")] = v
		}
	}
	img["properties"] = props
	return img
}

// pyStrValue is Python's str() of an image dict value.
func pyStrValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return wire.PyBool(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// apiStatus is API_STATUS_FROM_IMAGE_STATUS.
func apiStatus(s string) string {
	switch strings.ToUpper(s) {
	case "AVAILABLE":
		return "AVAILABLE"
	case "UNAVAILABLE":
		return "SAVING"
	case "ERROR":
		return "ERROR"
	case "DELETED":
		return "DELETED"
	}
	return "UNKNOWN"
}

// writeImageResponse is views._create_image_response: 200, no body, one
// lowercase x-image-meta-* header per detail field. Header names are set
// directly in the map so that they go out lowercase, as Django sends them.
func writeImageResponse(w http.ResponseWriter, img map[string]any) {
	h := w.Header()
	for _, key := range detailFields {
		if key == "properties" {
			props, _ := img["properties"].(map[string]string)
			for pk, pv := range props {
				hk := wire.Quote("x-image-meta-property-"+strings.ReplaceAll(pk, "_", "-"), "/")
				h[hk] = []string{wire.Quote(pv, "/")}
			}
			continue
		}
		val := pyStrValue(img[key])
		switch key {
		case "status":
			val = apiStatus(val)
		case "name", "description":
			val = wire.Quote(val, "/")
		}
		h["x-image-meta-"+strings.ReplaceAll(key, "_", "-")] = []string{val}
	}
	wire.WriteEmpty(w, http.StatusOK)
}

// backendFault maps a storage error the way handle_pithos_backend does:
// NotAllowedError → 403, NameError → 404 (both without a message),
// LimitExceeded → 400 with its message, QuotaError → 413.
func backendFault(w http.ResponseWriter, r *http.Request, err error) {
	var limit *store.ErrLimitExceeded
	var quota *store.ErrQuota
	switch {
	case store.IsForbidden(err):
		wire.WriteFault(w, r, http.StatusForbidden, wire.FaultForbidden, "", "")
	case store.IsNotFound(err):
		wire.WriteFault(w, r, http.StatusNotFound, wire.FaultNotFound, "", "")
	case errors.As(err, &limit):
		wire.WriteFault(w, r, http.StatusBadRequest, wire.FaultBadRequest, limit.Msg, "")
	case errors.As(err, &quota):
		wire.WriteFault(w, r, http.StatusRequestEntityTooLarge, wire.FaultOverLimit, "", "")
	default:
		wire.WriteFault(w, r, http.StatusInternalServerError, wire.FaultInternal, "Unexpected error", "")
	}
}

func plBadRequest(w http.ResponseWriter, r *http.Request, msg string) {
	wire.WriteFault(w, r, http.StatusBadRequest, wire.FaultBadRequest, msg, "")
}

// imageObject is PlanktonBackend.get_pithos_object with check_image: the
// object behind an image id, readable by u, that has a plankton:name. It
// answers the request itself when it fails.
func (s *Handler) imageObject(w http.ResponseWriter, r *http.Request, u astakos.User, id string) (*store.ObjectInfo, bool) {
	uuid, ok := planktonUUID(id)
	if !ok {
		plBadRequest(w, r, "")
		return nil, false
	}
	info, err := s.store.ObjectByUUID(u.UUID, uuid)
	if err != nil {
		backendFault(w, r, err)
		return nil, false
	}
	if _, ok := info.Meta[store.DomainPlankton][planktonPrefix+"name"]; !ok {
		wire.WriteFault(w, r, http.StatusNotFound, wire.FaultNotFound, fmt.Sprintf("Object '%s' does not exist.", id), "")
		return nil, false
	}
	return info, true
}

// prefixAndValidate is _prefix_and_validate_metadata: "plankton:" on every
// key, then the key and value length limits (in characters).
func prefixAndValidate(meta map[string]string) (map[string]string, string) {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, len(meta))
	for _, k := range keys {
		pk, v := planktonPrefix+k, meta[k]
		if utf8.RuneCountInString(pk) > maxMetaKeyLength {
			return nil, fmt.Sprintf("Metadata keys should be less than %d characters", maxMetaKeyLength)
		}
		if utf8.RuneCountInString(v) > maxMetaValueLength {
			return nil, fmt.Sprintf("Metadata values should be less than %d characters.", maxMetaValueLength)
		}
		out[pk] = v
	}
	return out, ""
}

// imageMetaFromParams flattens params (without is_public) into the
// unprefixed metadata stored for an image: fields as they are, properties as
// "property:<key>".
func imageMetaFromParams(p imageParams) map[string]string {
	meta := map[string]string{}
	for k, v := range p {
		switch x := v.(type) {
		case string:
			meta[k] = x
		case map[string]string:
			for pk, pv := range x {
				meta[propertyPrefix+pk] = pv
			}
		}
	}
	return meta
}

func withoutStar(read []string) []string {
	out := []string{}
	for _, u := range read {
		if u != "*" {
			out = append(out, u)
		}
	}
	return out
}
