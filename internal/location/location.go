// Package location parses and renders the three ways a Pithos+ object is
// named: "container:path" (kamaki < 0.12), "/container/path" and
// "pithos://<account>/<container>/<path>". It is the one place where these
// forms are understood; every other package holds a Location.
package location

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxObjectName is the longest object name Pithos accepts, in bytes.
const MaxObjectName = 1024

// MaxContainerName is the longest container name Pithos accepts.
const MaxContainerName = 256

// ErrInvalid is wrapped by every parse and validation error.
var ErrInvalid = errors.New("invalid location")

// Location names one object. Account may be empty until it is filled in with
// the authenticated user's uuid (see WithAccount).
type Location struct {
	Account   string
	Container string
	Object    string
}

// Parse accepts any of the three forms. Segments of a pithos:// URL are
// percent-decoded; the other two forms are taken literally (a local path such
// as "images/50%.diskdump" must not be decoded).
func Parse(s string) (Location, error) {
	var loc Location
	switch {
	case strings.HasPrefix(s, "pithos://"):
		rest := strings.TrimPrefix(s, "pithos://")
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) != 3 {
			return Location{}, fmt.Errorf("%w %q: want pithos://<account>/<container>/<object>", ErrInvalid, s)
		}
		dec := make([]string, 3)
		for i, p := range parts {
			v, err := url.PathUnescape(p)
			if err != nil {
				return Location{}, fmt.Errorf("%w %q: bad percent-encoding: %v", ErrInvalid, s, err)
			}
			dec[i] = v
		}
		loc = Location{Account: dec[0], Container: dec[1], Object: dec[2]}
		if loc.Account == "" {
			return Location{}, fmt.Errorf("%w %q: empty account", ErrInvalid, s)
		}
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return Location{}, fmt.Errorf("%w %q: unknown scheme %q, want pithos://<account>/<container>/<object>", ErrInvalid, s, scheme)
	case strings.HasPrefix(s, "/"):
		parts := strings.SplitN(s[1:], "/", 2)
		if len(parts) != 2 {
			return Location{}, fmt.Errorf("%w %q: want /<container>/<object>", ErrInvalid, s)
		}
		loc = Location{Container: parts[0], Object: parts[1]}
	case strings.Contains(s, ":"):
		c, o, _ := strings.Cut(s, ":")
		loc = Location{Container: c, Object: o}
	default:
		return Location{}, fmt.Errorf("%w %q: want container:path, /container/path or pithos://account/container/path", ErrInvalid, s)
	}
	if err := loc.Validate(); err != nil {
		return Location{}, err
	}
	return loc, nil
}

// Validate rejects what must never reach the server: empty segments, "." and
// ".." segments, names over the server's limits, and non-UTF-8.
func (l Location) Validate() error {
	if l.Container == "" {
		return fmt.Errorf("%w: empty container", ErrInvalid)
	}
	if strings.Contains(l.Container, "/") {
		return fmt.Errorf("%w: container %q contains '/'", ErrInvalid, l.Container)
	}
	if len(l.Container) > MaxContainerName {
		return fmt.Errorf("%w: container name is %d bytes, the limit is %d", ErrInvalid, len(l.Container), MaxContainerName)
	}
	if l.Object == "" {
		return fmt.Errorf("%w: empty object name", ErrInvalid)
	}
	if len(l.Object) > MaxObjectName {
		return fmt.Errorf("%w: object name is %d bytes, the limit is %d", ErrInvalid, len(l.Object), MaxObjectName)
	}
	for _, s := range []string{l.Account, l.Container, l.Object} {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalid, s)
		}
		if strings.ContainsRune(s, 0) {
			return fmt.Errorf("%w: %q contains a NUL byte", ErrInvalid, s)
		}
	}
	for _, seg := range strings.Split(l.Object, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: object %q has an empty path segment", ErrInvalid, l.Object)
		case ".", "..":
			return fmt.Errorf("%w: object %q has a %q segment", ErrInvalid, l.Object, seg)
		}
	}
	return nil
}

// WithAccount returns l with Account set to uuid when it was empty.
func (l Location) WithAccount(uuid string) Location {
	if l.Account == "" {
		l.Account = uuid
	}
	return l
}

// Join builds a location from a container and path segments, as the watcher
// does from a remote prefix and a relative file path.
func Join(container string, segments ...string) Location {
	var parts []string
	for _, s := range segments {
		s = strings.Trim(s, "/")
		if s != "" {
			parts = append(parts, s)
		}
	}
	return Location{Container: container, Object: strings.Join(parts, "/")}
}

// escapeSegment percent-encodes one path segment the way Python's
// urllib.quote(s, safe='/') does for segments that contain no '/'.
func escapeSegment(s string) string {
	const safe = "_.-~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(safe, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// EscapePath percent-encodes every segment of a '/'-separated path, keeping the
// separators. It is what both kamaki and the server do for URLs and locations.
func EscapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = escapeSegment(s)
	}
	return strings.Join(segs, "/")
}

// String renders the pithos:// form with each segment percent-encoded: the
// form Plankton requires.
func (l Location) String() string {
	return "pithos://" + escapeSegment(l.Account) + "/" + escapeSegment(l.Container) + "/" + EscapePath(l.Object)
}

// Short renders "/container/object" for messages, unescaped.
func (l Location) Short() string {
	return "/" + l.Container + "/" + l.Object
}
