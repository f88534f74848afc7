package pithos

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/imagesync/imagesync/internal/rest"
)

// ListOptions filter an object listing.
type ListOptions struct {
	// Prefix keeps names that start with it.
	Prefix string
	// Delimiter groups names past it into Subdirs ("photos/" …).
	Delimiter string
	// Path lists one "folder" non-recursively (prefix=Path, delimiter='/').
	Path string
	// Marker starts after this name.
	Marker string
	// Limit caps the number of entries (objects plus subdirs); 0 lists all,
	// paging past the server's 10000-per-request cap.
	Limit int
	// Shared lists only objects with permissions; Public only published ones.
	Shared, Public bool
}

// ObjectEntry is one object in a listing. Listings carry no user metadata.
type ObjectEntry struct {
	Name        string
	Bytes       int64
	ContentType string
	// Hash is the Merkle root (x_object_hash); MD5 is the listing's "hash",
	// the stored checksum, usually empty.
	Hash             string
	MD5              string
	UUID             string
	Version          int64
	VersionTimestamp time.Time
	LastModified     time.Time
	ModifiedBy       string
	Sharing          *Sharing
	SharedBy         string
	AllowedTo        string
	PublicURL        string
}

// Listing is the result of ListObjects.
type Listing struct {
	Objects []ObjectEntry
	// Subdirs are the virtual directories (with the delimiter at the end).
	Subdirs []string
}

type objectJSON struct {
	Name             string  `json:"name"`
	Subdir           string  `json:"subdir"`
	Bytes            flexInt `json:"bytes"`
	ContentType      string  `json:"content_type"`
	Hash             string  `json:"hash"`
	ObjectHash       string  `json:"x_object_hash"`
	UUID             string  `json:"x_object_uuid"`
	Version          flexInt `json:"x_object_version"`
	VersionTimestamp flexTS  `json:"x_object_version_timestamp"`
	LastModified     string  `json:"last_modified"`
	ModifiedBy       string  `json:"x_object_modified_by"`
	Sharing          string  `json:"x_object_sharing"`
	SharedBy         string  `json:"x_object_shared_by"`
	AllowedTo        string  `json:"x_object_allowed_to"`
	Public           string  `json:"x_object_public"`
}

// ListObjects lists a container (GET ?format=json), following markers until
// the listing or opts.Limit is exhausted.
func (c *Client) ListObjects(ctx context.Context, container string, opts *ListOptions) (*Listing, error) {
	if opts == nil {
		opts = &ListOptions{}
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("pithos: listing %s: negative limit %d", container, opts.Limit)
	}
	out := &Listing{}
	marker := opts.Marker
	lastSubdir := ""
	for {
		// A page may open with the subdir that closed the previous one (the
		// marker is that subdir, and the server collapses the names under
		// it into it again), so ask for one more than still wanted, and
		// never for a single entry after a subdir, or paging would stall.
		page := c.pageSize()
		if remaining := opts.Limit - len(out.Objects) - len(out.Subdirs); opts.Limit > 0 && remaining+1 < page {
			page = remaining + 1
		}
		if marker != "" && marker == lastSubdir {
			page = max(page, 2)
		}
		q := []rest.Param{{Key: "format", Value: "json"}, {Key: "limit", Value: strconv.Itoa(page)}}
		if opts.Path != "" {
			q = append(q, rest.Param{Key: "path", Value: opts.Path})
		} else {
			if opts.Prefix != "" {
				q = append(q, rest.Param{Key: "prefix", Value: opts.Prefix})
			}
			if opts.Delimiter != "" {
				q = append(q, rest.Param{Key: "delimiter", Value: opts.Delimiter})
			}
		}
		if marker != "" {
			q = append(q, rest.Param{Key: "marker", Value: marker})
		}
		if opts.Shared {
			q = append(q, rest.Param{Key: "shared"})
		}
		if opts.Public {
			q = append(q, rest.Param{Key: "public"})
		}
		resp, err := c.rest.Do(ctx, &rest.Request{
			Method:  http.MethodGet,
			Path:    c.containerPath(container),
			Query:   q,
			Success: []int{http.StatusOK, http.StatusNoContent},
		})
		if err != nil {
			return nil, err
		}
		var items []objectJSON
		if err := decodeListing(resp, &items); err != nil {
			return nil, fmt.Errorf("pithos: listing %s: %w", container, err)
		}
		progressed := false
		for _, it := range items {
			if opts.Limit > 0 && len(out.Objects)+len(out.Subdirs) >= opts.Limit {
				return out, nil
			}
			if it.Subdir != "" {
				if it.Subdir == lastSubdir {
					continue
				}
				out.Subdirs = append(out.Subdirs, it.Subdir)
				lastSubdir, marker, progressed = it.Subdir, it.Subdir, true
				continue
			}
			e := ObjectEntry{
				Name: it.Name, Bytes: int64(it.Bytes), ContentType: it.ContentType,
				Hash: it.ObjectHash, MD5: it.Hash, UUID: it.UUID, Version: int64(it.Version),
				VersionTimestamp: time.Time(it.VersionTimestamp), LastModified: parseListTime(it.LastModified),
				ModifiedBy: it.ModifiedBy, SharedBy: it.SharedBy, AllowedTo: it.AllowedTo, PublicURL: it.Public,
			}
			if it.Sharing != "" {
				s, err := ParseSharing(it.Sharing)
				if err != nil {
					return nil, err
				}
				e.Sharing = &s
			}
			out.Objects = append(out.Objects, e)
			marker, progressed = it.Name, true
		}
		if len(items) < page || !progressed || (opts.Limit > 0 && len(out.Objects)+len(out.Subdirs) >= opts.Limit) {
			return out, nil
		}
	}
}
