package image

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/rest"
)

// Plankton carries image metadata in X-Image-Meta-* headers, both ways
// (synnefo plankton/views.py, kamaki ImageClient). Names, descriptions and
// property values are URL-quoted UTF-8; property keys travel in the header
// name itself.
const (
	headerMetaPrefix     = "x-image-meta-"
	headerPropertyPrefix = "x-image-meta-property-"

	hdrName            = "X-Image-Meta-Name"
	hdrLocation        = "X-Image-Meta-Location"
	hdrDiskFormat      = "x-image-meta-disk-format"
	hdrContainerFormat = "x-image-meta-container-format"
	hdrIsPublic        = "x-image-meta-is-public"
	hdrChecksum        = "x-image-meta-checksum"
)

// quote is Python's urllib.quote(s, safe='/') as kamaki applies it to header
// values; rest already implements exactly that for query strings.
func quote(s string) string { return rest.QueryEscape(s) }

// pyBoolHeader is how Plankton and kamaki spell booleans in headers.
func pyBoolHeader(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// propertyHeader is the header that carries property key. The server reads
// it through WSGI (uppercased, '-' turned into '_'), URL-unquotes the rest
// and normalises it (lowercase, punctuation to '_'), so:
//   - ASCII punctuation, '_' included, is sent as '-': it normalises to '_'
//     anyway, and proxies (nginx, recent gunicorn) drop header names that
//     contain underscores;
//   - letters and digits go as they are (case is normalised away);
//   - anything else (non-ASCII, space) is percent-encoded, which the server
//     decodes before normalising.
func propertyHeader(key string) string {
	var b strings.Builder
	b.WriteString("X-Image-Meta-Property-")
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
			b.WriteByte(c)
		case c < 0x80 && strings.IndexByte("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) >= 0:
			b.WriteByte('-')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// setProperties adds one header per property; an empty value deletes the
// property on the server (Pithos drops metadata set to "").
func setProperties(h http.Header, props map[string]string) {
	for k, v := range props {
		h[propertyHeader(k)] = []string{quote(v)}
	}
}

// checkPropertyKeys rejects keys that cannot be sent or that collide once
// the server normalises them: two headers for the same property would leave
// which value wins to the server's header order.
func checkPropertyKeys(keys []string) error {
	seen := make(map[string]string, len(keys))
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" {
			return fmt.Errorf("empty property name")
		}
		n := NormalizeKey(k)
		if prev, dup := seen[n]; dup {
			return fmt.Errorf("properties %q and %q are the same property (%q) to Plankton", prev, k, n)
		}
		seen[n] = k
	}
	return nil
}

// decodeImageHeaders reads an image from the x-image-meta-* headers of a
// HEAD, POST or PUT answer, as kamaki's _format_image_headers does: name,
// description and property values are unquoted, property keys come back
// lowercase with '_' for '-'. Location is kept exactly as the server sent it
// (percent-encoded): unquoting it, as kamaki does for display, would make
// names containing '%' ambiguous, while the encoded form parses back with
// location.Parse.
func decodeImageHeaders(h http.Header) (*Image, error) {
	img := &Image{Properties: map[string]string{}}
	seen := false
	for name, vals := range h {
		ln := strings.ToLower(name)
		if !strings.HasPrefix(ln, headerMetaPrefix) || len(vals) == 0 {
			continue
		}
		seen = true
		v := vals[0]
		if key, ok := strings.CutPrefix(ln, headerPropertyPrefix); ok {
			img.Properties[strings.ReplaceAll(rest.Unquote(key), "-", "_")] = rest.Unquote(v)
			continue
		}
		switch ln[len(headerMetaPrefix):] {
		case "id":
			img.ID = v
		case "name":
			img.Name = rest.Unquote(v)
		case "description":
			img.Description = rest.Unquote(v)
		case "disk-format":
			img.DiskFormat = v
		case "container-format":
			img.ContainerFormat = v
		case "status":
			img.Status = v
		case "owner":
			img.Owner = v
		case "checksum":
			img.Checksum = v
		case "location":
			img.Location = v
		case "size":
			if v != "" {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("image header x-image-meta-size: %q is not a number", v)
				}
				img.Size = n
			}
		case "is-public":
			img.IsPublic = strings.EqualFold(v, "true")
		case "is-snapshot":
			img.IsSnapshot = strings.EqualFold(v, "true")
		case "created-at":
			img.CreatedAt = v
		case "updated-at":
			img.UpdatedAt = v
		case "deleted-at":
			img.DeletedAt = v
		}
	}
	if !seen {
		return nil, fmt.Errorf("the answer has no x-image-meta-* headers: is this a Plankton endpoint?")
	}
	if img.ID == "" {
		return nil, fmt.Errorf("the answer has no x-image-meta-id header")
	}
	return img, nil
}
