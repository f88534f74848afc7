package image

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/rest"
)

// Client talks to Plankton, the Synnefo image service, as kamaki's
// ImageClient does. Errors from the server are *rest.Error (wrapped with
// what was being done and what a person can do about it); use IsNotFound,
// IsForbidden, IsUnauthorized or rest.StatusOf to branch on them.
type Client struct {
	rc *rest.Client
}

// NewClient returns a client for endpoint, the image service URL including
// its version (".../image/v1.0"). doer is the shared HTTP stack (usually a
// rest.Retrying); nil means http.DefaultClient.
func NewClient(endpoint, token string, doer rest.Doer) *Client {
	return &Client{rc: rest.New(endpoint, token, doer)}
}

// Endpoint is the base URL requests go to.
func (c *Client) Endpoint() string { return c.rc.BaseURL }

// IsNotFound reports whether err is a 404 from the server.
func IsNotFound(err error) bool { return rest.IsStatus(err, http.StatusNotFound) }

// IsForbidden reports whether err is a 403 from the server: the caller may
// see the image but does not own it (or may not see it at all).
func IsForbidden(err error) bool { return rest.IsStatus(err, http.StatusForbidden) }

// IsUnauthorized reports whether err is a 401: the token is missing, wrong or
// expired, and retrying with the same token cannot help.
func IsUnauthorized(err error) bool { return rest.IsStatus(err, http.StatusUnauthorized) }

// explain wraps a failed call as "<op>: <what it means>: <the HTTP error>".
// hints override the generic meaning per status.
func explain(op string, err error, hints map[int]string) error {
	var re *rest.Error
	if !errors.As(err, &re) {
		return fmt.Errorf("%s: %w", op, err)
	}
	hint, ok := hints[re.Status]
	if !ok {
		switch {
		case re.Status == http.StatusUnauthorized:
			hint = "the token was rejected: check it, or get a new one from the cloud's web UI"
		case re.Status == http.StatusForbidden:
			hint = "permission denied"
		case re.Status == http.StatusNotFound:
			hint = "not found"
		case re.Status == http.StatusBadRequest:
			hint = "Plankton rejected the request"
			if re.Message != "" {
				hint += ": " + re.Message
			}
		case re.Status == http.StatusRequestEntityTooLarge:
			hint = "over quota"
		case re.Temporary():
			hint = "the server failed (temporary; retrying may help)"
		default:
			hint = "unexpected answer"
		}
	}
	return fmt.Errorf("%s: %s: %w", op, hint, err)
}

// checkSegment rejects an image id or member that cannot be one path segment.
func checkSegment(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("%s %q contains '/' or NUL", what, s)
	}
	return nil
}

// RegisterParams are the optional parts of a registration.
type RegisterParams struct {
	// DiskFormat and ContainerFormat are sent when set; the server defaults
	// them to diskdump and bare.
	DiskFormat      string
	ContainerFormat string
	// IsPublic is always sent: a registration resets the read permissions to
	// the owner, plus everybody when public.
	IsPublic bool
	// Checksum, when set, must be the object's Pithos Merkle hash
	// (X-Object-Hash); the server answers 400 otherwise. It guards against
	// registering an object that is not the file that was uploaded.
	Checksum string
	// Properties are merged into the image's existing ones (a property set
	// to "" is deleted).
	Properties map[string]string
}

// Register registers (or re-registers) the Pithos object at loc as an image
// named name: POST /images/ with no body. Re-registering a location keeps the
// image id (the object's UUID), merges the metadata server-side and resets
// the read permissions to the owner (plus everybody when IsPublic), which
// drops any members. No size is ever sent: Plankton rejects any
// X-Image-Meta-Size header that arrives over HTTP.
func (c *Client) Register(ctx context.Context, name string, loc location.Location, p RegisterParams) (*Image, error) {
	op := fmt.Sprintf("register image %q at %s", name, loc.String())
	if err := checkRegister(name, loc, p); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	h := http.Header{}
	h[hdrName] = []string{quote(name)}
	h[hdrLocation] = []string{loc.String()}
	if p.DiskFormat != "" {
		h[hdrDiskFormat] = []string{p.DiskFormat}
	}
	if p.ContainerFormat != "" {
		h[hdrContainerFormat] = []string{p.ContainerFormat}
	}
	h[hdrIsPublic] = []string{pyBoolHeader(p.IsPublic)}
	if p.Checksum != "" {
		h[hdrChecksum] = []string{p.Checksum}
	}
	setProperties(h, p.Properties)
	resp, err := c.rc.DoDiscard(ctx, &rest.Request{Method: http.MethodPost, Path: "/images/", Header: h, Success: []int{http.StatusOK}})
	if err != nil {
		badRequest := "Plankton rejected the registration"
		var re *rest.Error
		if errors.As(err, &re) && re.Message != "" {
			badRequest += ": " + re.Message
			if strings.Contains(re.Message, "checksum") {
				badRequest += " (the object's hash is not the one given: was it overwritten, or is the upload unfinished?)"
			}
		}
		return nil, explain(op, err, map[int]string{
			http.StatusNotFound:   fmt.Sprintf("image file %s does not exist (upload it first)", loc.String()),
			http.StatusForbidden:  fmt.Sprintf("permission denied: only the owner of %s (account %s) can register it", loc.Short(), loc.Account),
			http.StatusBadRequest: badRequest,
		})
	}
	img, err := decodeImageHeaders(resp.Header)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return img, nil
}

func checkRegister(name string, loc location.Location, p RegisterParams) error {
	if name == "" {
		return errors.New("an image needs a name")
	}
	if err := loc.Validate(); err != nil {
		return err
	}
	if loc.Account == "" {
		return fmt.Errorf("location %s has no account (user uuid)", loc.Short())
	}
	if p.DiskFormat != "" && !slices.Contains(DiskFormats, p.DiskFormat) {
		return fmt.Errorf("unknown disk format %q; use one of: %s", p.DiskFormat, strings.Join(DiskFormats, ", "))
	}
	if p.ContainerFormat != "" && !slices.Contains(ContainerFormats, p.ContainerFormat) {
		return fmt.Errorf("unknown container format %q; use one of: %s", p.ContainerFormat, strings.Join(ContainerFormats, ", "))
	}
	return checkPropertyKeys(mapKeys(p.Properties))
}

func mapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// Get reads one image's metadata: HEAD /images/<id>. A 404 (IsNotFound)
// means there is no image with that id (or the object is not registered);
// a 403 that the image exists but is not shared with the caller.
func (c *Client) Get(ctx context.Context, id string) (*Image, error) {
	op := fmt.Sprintf("read image %s", id)
	if err := checkSegment("image id", id); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	resp, err := c.rc.DoDiscard(ctx, &rest.Request{Method: http.MethodHead, Path: "/images/" + id, Success: []int{http.StatusOK}})
	if err != nil {
		return nil, explain(op, err, map[int]string{
			http.StatusNotFound:  "no such image (never registered, unregistered, or its file was deleted)",
			http.StatusForbidden: "the image is not shared with this user",
		})
	}
	img, err := decodeImageHeaders(resp.Header)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return img, nil
}

// UpdateParams changes a registered image in place (PUT /images/<id>):
// fields left nil, and properties not named, stay as they are.
type UpdateParams struct {
	Name            *string
	DiskFormat      *string
	ContainerFormat *string
	// IsPublic adds or removes everybody's read access; other members stay.
	// Only the owner may change it.
	IsPublic         *bool
	SetProperties    map[string]string
	DeleteProperties []string
}

func (p UpdateParams) empty() bool {
	return p.Name == nil && p.DiskFormat == nil && p.ContainerFormat == nil && p.IsPublic == nil &&
		len(p.SetProperties) == 0 && len(p.DeleteProperties) == 0
}

// Update changes an image's metadata and returns the image as it is after
// the change. Deleting a property sends it with an empty value, which is how
// Pithos removes metadata.
func (c *Client) Update(ctx context.Context, id string, p UpdateParams) (*Image, error) {
	op := fmt.Sprintf("update image %s", id)
	if err := checkUpdate(id, p); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	h := http.Header{}
	if p.Name != nil {
		h[hdrName] = []string{quote(*p.Name)}
	}
	if p.DiskFormat != nil {
		h["X-Image-Meta-Disk-Format"] = []string{*p.DiskFormat}
	}
	if p.ContainerFormat != nil {
		h["X-Image-Meta-Container-Format"] = []string{*p.ContainerFormat}
	}
	if p.IsPublic != nil {
		h["X-Image-Meta-Is-Public"] = []string{pyBoolHeader(*p.IsPublic)}
	}
	setProperties(h, p.SetProperties)
	del := make(map[string]string, len(p.DeleteProperties))
	for _, k := range p.DeleteProperties {
		del[k] = ""
	}
	setProperties(h, del)
	resp, err := c.rc.DoDiscard(ctx, &rest.Request{Method: http.MethodPut, Path: "/images/" + id, Header: h, Success: []int{http.StatusOK}})
	if err != nil {
		return nil, explain(op, err, map[int]string{
			http.StatusNotFound:  "no such image",
			http.StatusForbidden: "permission denied: only the image's owner can change it",
		})
	}
	img, err := decodeImageHeaders(resp.Header)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return img, nil
}

func checkUpdate(id string, p UpdateParams) error {
	if err := checkSegment("image id", id); err != nil {
		return err
	}
	if p.empty() {
		return errors.New("nothing to change")
	}
	if p.Name != nil && *p.Name == "" {
		// An empty name deletes plankton:name, which unregisters the image;
		// the server then rolls back and answers 404.
		return errors.New("an image's name cannot be empty")
	}
	if p.DiskFormat != nil && !slices.Contains(DiskFormats, *p.DiskFormat) {
		return fmt.Errorf("unknown disk format %q; use one of: %s", *p.DiskFormat, strings.Join(DiskFormats, ", "))
	}
	if p.ContainerFormat != nil && !slices.Contains(ContainerFormats, *p.ContainerFormat) {
		return fmt.Errorf("unknown container format %q; use one of: %s", *p.ContainerFormat, strings.Join(ContainerFormats, ", "))
	}
	for k, v := range p.SetProperties {
		if v == "" {
			return fmt.Errorf("property %q: an empty value deletes it; list it in DeleteProperties instead", k)
		}
	}
	return checkPropertyKeys(append(mapKeys(p.SetProperties), p.DeleteProperties...))
}

// Unregister removes an image: DELETE /images/<id>. The Pithos object, its
// UUID and its sharing stay; only the image metadata goes. Only the owner
// (or a user with write access to the object) may do it.
func (c *Client) Unregister(ctx context.Context, id string) error {
	op := fmt.Sprintf("unregister image %s", id)
	if err := checkSegment("image id", id); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err := c.rc.DoDiscard(ctx, &rest.Request{Method: http.MethodDelete, Path: "/images/" + id, Success: []int{http.StatusNoContent}})
	if err != nil {
		return explain(op, err, map[int]string{
			http.StatusNotFound:  "no such image",
			http.StatusForbidden: "permission denied: only the image's owner can unregister it",
		})
	}
	return nil
}

// Query parameters GET /images/ reads (plankton/views.py FILTERS, PARAMS).
var (
	listFilters = []string{"name", "container_format", "disk_format", "status", "size_min", "size_max"}
	// SortKeys are the values Plankton accepts for sort_key.
	SortKeys = []string{"id", "name", "status", "size", "disk_format", "container_format", "created_at", "updated_at"}
)

// ListOptions select and order a listing.
type ListOptions struct {
	// Filters are name, container_format, disk_format, status, size_min and
	// size_max. Plankton parses and validates them but does not apply them
	// (its backend has a "TODO: Use filters"), so the client applies them
	// to the answer too: exact matches, status case-insensitively, sizes
	// inclusive.
	Filters map[string]string
	// Owner keeps only the images of this user uuid (kamaki's
	// `image list --owner`); it is never sent, and needs ListDetail.
	Owner string
	// SortKey is one of SortKeys; empty leaves the server's default
	// (created_at).
	SortKey string
	// SortDir is "asc" or "desc"; empty is "asc", which kamaki always sends.
	SortDir string
}

// validate applies the server's rules before any request.
func (o *ListOptions) validate(detail bool) error {
	for k, v := range o.Filters {
		if !slices.Contains(listFilters, k) {
			return fmt.Errorf("unknown filter %q; use one of: %s", k, strings.Join(listFilters, ", "))
		}
		if k == "size_min" || k == "size_max" {
			if _, err := parsePyInt(v); err != nil {
				return fmt.Errorf("filter %s=%q is not an integer", k, v)
			}
		}
	}
	if o.SortKey != "" && !slices.Contains(SortKeys, o.SortKey) {
		return fmt.Errorf("invalid sort key %q; use one of: %s", o.SortKey, strings.Join(SortKeys, ", "))
	}
	if o.SortDir != "" && o.SortDir != "asc" && o.SortDir != "desc" {
		return fmt.Errorf("invalid sort direction %q; use asc or desc", o.SortDir)
	}
	if o.Owner != "" && !detail {
		return errors.New("the owner filter needs the detailed listing (ListDetail)")
	}
	return nil
}

// ListFilters are the filters ListOptions accepts.
func ListFilters() []string { return slices.Clone(listFilters) }

// Validate checks the filters and the sort order as List and ListDetail do
// before any request, for callers that filter and sort a listing of their
// own (syncctl images).
func (o ListOptions) Validate() error { return o.validate(true) }

// Keep reports whether img passes the filters and the owner.
func (o ListOptions) Keep(img *Image) bool { return o.keep(img) }

// Compare orders two images by SortKey (created_at when empty, as
// Plankton) and SortDir: sizes numerically, the rest as strings (the dates
// are ISO 8601, so that is their time order).
func (o ListOptions) Compare(a, b *Image) int {
	var c int
	switch o.SortKey {
	case "id":
		c = strings.Compare(a.ID, b.ID)
	case "name":
		c = strings.Compare(a.Name, b.Name)
	case "status":
		c = strings.Compare(a.Status, b.Status)
	case "size":
		c = cmp.Compare(a.Size, b.Size)
	case "disk_format":
		c = strings.Compare(a.DiskFormat, b.DiskFormat)
	case "container_format":
		c = strings.Compare(a.ContainerFormat, b.ContainerFormat)
	case "updated_at":
		c = strings.Compare(a.UpdatedAt, b.UpdatedAt)
	default:
		c = strings.Compare(a.CreatedAt, b.CreatedAt)
	}
	if o.SortDir == "desc" {
		return -c
	}
	return c
}

// parsePyInt is Python's int() on a query value: surrounding blanks and a
// sign are allowed, nothing else.
func parsePyInt(s string) (int64, error) {
	return strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(s), "+"), 10, 64)
}

func (o *ListOptions) query() []rest.Param {
	dir := o.SortDir
	if dir == "" {
		dir = "asc"
	}
	q := []rest.Param{{Key: "sort_dir", Value: dir}}
	if o.SortKey != "" {
		q = append(q, rest.Param{Key: "sort_key", Value: o.SortKey})
	}
	for _, k := range listFilters {
		if v, ok := o.Filters[k]; ok && v != "" {
			q = append(q, rest.Param{Key: k, Value: v})
		}
	}
	return q
}

func (o *ListOptions) keep(img *Image) bool {
	if o.Owner != "" && img.Owner != o.Owner {
		return false
	}
	for k, v := range o.Filters {
		if v == "" {
			continue
		}
		switch k {
		case "name":
			if img.Name != v {
				return false
			}
		case "container_format":
			if img.ContainerFormat != v {
				return false
			}
		case "disk_format":
			if img.DiskFormat != v {
				return false
			}
		case "status":
			if !strings.EqualFold(img.Status, v) {
				return false
			}
		case "size_min":
			if n, _ := parsePyInt(v); img.Size < n {
				return false
			}
		case "size_max":
			if n, _ := parsePyInt(v); img.Size > n {
				return false
			}
		}
	}
	return true
}

// imageJSON is an entry of {"images": [...]}. The short listing has only
// id, name, status, disk_format, container_format and size.
type imageJSON struct {
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	DiskFormat      string            `json:"disk_format"`
	ContainerFormat string            `json:"container_format"`
	Status          string            `json:"status"`
	Owner           string            `json:"owner"`
	Checksum        string            `json:"checksum"`
	Location        string            `json:"location"`
	Size            int64             `json:"size"`
	IsPublic        bool              `json:"is_public"`
	IsSnapshot      bool              `json:"is_snapshot"`
	Description     string            `json:"description"`
	CreatedAt       string            `json:"created_at"`
	UpdatedAt       string            `json:"updated_at"`
	DeletedAt       string            `json:"deleted_at"`
	Properties      map[string]string `json:"properties"`
}

func (j *imageJSON) image() *Image {
	props := j.Properties
	if props == nil {
		props = map[string]string{}
	}
	return &Image{
		ID: j.ID, Name: j.Name, DiskFormat: j.DiskFormat, ContainerFormat: j.ContainerFormat,
		Status: j.Status, Owner: j.Owner, Checksum: j.Checksum, Location: j.Location, Size: j.Size,
		IsPublic: j.IsPublic, IsSnapshot: j.IsSnapshot, Description: j.Description,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, DeletedAt: j.DeletedAt, Properties: props,
	}
}

// List returns the images the caller can see (its own, shared with it, and
// public ones) with the short set of fields: GET /images/. At most one
// ListOptions may be given.
func (c *Client) List(ctx context.Context, opts ...ListOptions) ([]*Image, error) {
	return c.list(ctx, false, opts)
}

// ListDetail is List with every field, properties included: GET
// /images/detail.
func (c *Client) ListDetail(ctx context.Context, opts ...ListOptions) ([]*Image, error) {
	return c.list(ctx, true, opts)
}

func (c *Client) list(ctx context.Context, detail bool, opts []ListOptions) ([]*Image, error) {
	op, path := "list images", "/images/"
	if detail {
		op, path = "list images in detail", "/images/detail"
	}
	if len(opts) > 1 {
		return nil, fmt.Errorf("%s: give at most one ListOptions", op)
	}
	var o ListOptions
	if len(opts) == 1 {
		o = opts[0]
	}
	if err := o.validate(detail); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var doc struct {
		Images []imageJSON `json:"images"`
	}
	if err := c.getJSON(ctx, op, &rest.Request{Method: http.MethodGet, Path: path, Query: o.query()}, &doc, nil); err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(doc.Images))
	for i := range doc.Images {
		if img := doc.Images[i].image(); o.keep(img) {
			out = append(out, img)
		}
	}
	return out, nil
}

// getJSON sends a GET expecting 200 and decodes the JSON body into v.
func (c *Client) getJSON(ctx context.Context, op string, r *rest.Request, v any, hints map[int]string) error {
	r.Success = []int{http.StatusOK}
	resp, err := c.rc.Do(ctx, r)
	if err != nil {
		return explain(op, err, hints)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: decoding the answer: %w", op, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return nil
}
