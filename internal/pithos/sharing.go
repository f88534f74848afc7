package pithos

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/imagesync/imagesync/internal/rest"
)

// Sharing is an object's X-Object-Sharing permissions. Members are user
// uuids, "account:group" names, or "*" for everyone. The server lowercases
// members and keeps a user listed in both lists as a writer only.
type Sharing struct {
	Read  []string
	Write []string
}

// IsZero reports whether nobody is granted anything.
func (s Sharing) IsZero() bool { return len(s.Read) == 0 && len(s.Write) == 0 }

// String is the request form kamaki sends: "read=a,b;write=c", empty lists
// left out; "" when nothing is shared (which clears the sharing).
func (s Sharing) String() string {
	var parts []string
	if len(s.Read) > 0 {
		parts = append(parts, "read="+strings.Join(s.Read, ","))
	}
	if len(s.Write) > 0 {
		parts = append(parts, "write="+strings.Join(s.Write, ","))
	}
	return strings.Join(parts, ";")
}

// validate refuses members that would change meaning on the wire.
func (s Sharing) validate() error {
	for _, list := range [][]string{s.Read, s.Write} {
		for _, m := range list {
			if strings.TrimSpace(m) == "" {
				return fmt.Errorf("pithos: empty sharing member")
			}
			if strings.ContainsAny(m, ",;") {
				return fmt.Errorf("pithos: sharing member %q contains ',' or ';'", m)
			}
			for i := 0; i < len(m); i++ {
				if m[i] < 0x20 || m[i] == 0x7f {
					return fmt.Errorf("pithos: sharing member %q contains a control character", m)
				}
			}
		}
	}
	return nil
}

// header is the X-Object-Sharing value to send.
func (s Sharing) header() string { return quoteHeaderValue(s.String()) }

// ParseSharing parses an X-Object-Sharing value as the server sends it
// ("read=a,b; write=c"). Blank members and blank parts are skipped; a part
// that is neither read= nor write= is an error.
func ParseSharing(v string) (Sharing, error) {
	var s Sharing
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, list, ok := strings.Cut(part, "=")
		if !ok {
			return Sharing{}, fmt.Errorf("pithos: bad X-Object-Sharing %q: %q has no '='", v, part)
		}
		var members []string
		for _, m := range strings.Split(list, ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "read":
			s.Read = append(s.Read, members...)
		case "write":
			s.Write = append(s.Write, members...)
		default:
			return Sharing{}, fmt.Errorf("pithos: bad X-Object-Sharing %q: unknown permission %q", v, key)
		}
	}
	return s, nil
}

// SetSharing replaces the object's permissions (POST ?update with
// X-Object-Sharing). Empty read and write lists remove all sharing. Only
// the owner may do this (else 403).
func (c *Client) SetSharing(ctx context.Context, container, object string, read, write []string) error {
	s := Sharing{Read: read, Write: write}
	if err := s.validate(); err != nil {
		return err
	}
	h := http.Header{}
	h.Set("X-Object-Sharing", s.header())
	return c.postObjectUpdate(ctx, container, object, h, nil)
}

// SetPublic publishes or unpublishes the object (POST ?update with
// X-Object-Public). Publishing returns the public URL the server assigned.
func (c *Client) SetPublic(ctx context.Context, container, object string, public bool) (publicURL string, err error) {
	h := http.Header{}
	h.Set("X-Object-Public", pyBool(public))
	if err := c.postObjectUpdate(ctx, container, object, h, nil); err != nil {
		return "", err
	}
	if !public {
		return "", nil
	}
	info, err := c.ObjectInfo(ctx, container, object, nil)
	if err != nil {
		return "", err
	}
	if info.PublicURL == "" {
		return "", fmt.Errorf("pithos: %s/%s: published, but the server reports no X-Object-Public", container, object)
	}
	return info.PublicURL, nil
}

// postObjectUpdate is POST <object>?update without a body: a metadata,
// sharing or public update (202). Without ?update the server would clear
// the object's metadata, so it is always sent. It returns the new version
// when the server reports one.
func (c *Client) postObjectUpdate(ctx context.Context, container, object string, h http.Header, version *int64) error {
	resp, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method:  http.MethodPost,
		Path:    c.objectPath(container, object),
		Query:   []rest.Param{{Key: "update"}},
		Header:  h,
		Success: []int{http.StatusAccepted},
	})
	if err != nil {
		return err
	}
	if version != nil {
		*version, _ = intHeader(resp.Header, "X-Object-Version")
	}
	return nil
}
