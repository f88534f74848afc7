package image

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What an image's metadata may hold, as Plankton stores it (synnefo
// plankton/backend.py). Every key is stored in the object's "plankton"
// metadata domain with a "plankton:" prefix, properties as
// "plankton:property:<key>", and the length limits apply to the prefixed key,
// counted in characters.
const (
	// PropertyKeyPrefix is what Plankton puts before a property key when it
	// stores it; the prefixed key may have at most MaxPropertyKey characters.
	PropertyKeyPrefix = "plankton:property:"
	// MaxPropertyKeyChars is the longest property key Plankton accepts:
	// 111 - len("plankton:property:") = 93 characters.
	MaxPropertyKeyChars = MaxPropertyKey - len(PropertyKeyPrefix)
	// FixedPlanktonItems is how many of the MaxProperties metadata items a
	// registration always uses besides properties: plankton:name,
	// plankton:disk_format, plankton:container_format (always stored, with
	// defaults) and plankton:created_at. imagesync never sends owner, and
	// is-public lives in the sharing permissions, not in metadata.
	FixedPlanktonItems = 4
	// MaxImageProperties is the property budget: 32 - 4 = 28.
	MaxImageProperties = MaxProperties - FixedPlanktonItems
	// MaxMemberLen bounds a member's uuid (a Pithos sharing entry).
	MaxMemberLen = 256
)

// Problem is one thing wrong with an image's metadata.
type Problem struct {
	// Field is "name", "disk-format", "container-format",
	// "properties.<key>", "properties" or "members".
	Field string
	// Source is the level that set the value (see Resolved.Provenance);
	// empty when unknown.
	Source string
	Msg    string
}

func (p Problem) String() string {
	if p.Source != "" {
		return fmt.Sprintf("%s (set in %s): %s", p.Field, p.Source, p.Msg)
	}
	return p.Field + ": " + p.Msg
}

// ValidationError lists every problem with an image's metadata, so that one
// round of fixing is enough. It is permanent: retrying cannot help.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	noun := "problem"
	if len(parts) != 1 {
		noun = "problems"
	}
	return fmt.Sprintf("invalid image metadata (%d %s): %s", len(parts), noun, strings.Join(parts, "; "))
}

// Validate checks md against what Plankton accepts and stores, before any
// request, and returns a *ValidationError listing every problem, or nil.
func Validate(md *Metadata) error {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	switch {
	case !utf8.ValidString(md.Name):
		add(ProvName, "%q is not valid UTF-8; rename the file or set \"name\" in its metafile", md.Name)
	case strings.TrimSpace(md.Name) == "":
		add(ProvName, "is empty; Plankton requires a name: set \"name\" in the image's metafile or a template")
	default:
		if n := utf8.RuneCountInString(md.Name); n > MaxPropertyValue {
			add(ProvName, "is %d characters; Plankton stores at most %d: shorten it", n, MaxPropertyValue)
		}
		if hasControl(md.Name) {
			add(ProvName, "%q contains control characters (such as a newline); remove them", md.Name)
		}
	}
	if !slices.Contains(DiskFormats, md.DiskFormat) {
		add(ProvDiskFormat, "unknown disk format %q; use one of: %s", md.DiskFormat, strings.Join(DiskFormats, ", "))
	}
	if !slices.Contains(ContainerFormats, md.ContainerFormat) {
		add(ProvContainerFormat, "unknown container format %q; use one of: %s", md.ContainerFormat, strings.Join(ContainerFormats, ", "))
	}

	keys := make([]string, 0, len(md.Properties))
	for k := range md.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := md.Properties[k]
		field := ProvProperty(k)
		if !utf8.ValidString(k) {
			field = ProvProperty(strconv.Quote(k)) // keep messages printable
		}
		switch {
		case !utf8.ValidString(k):
			add(field, "the property name is not valid UTF-8; rename it")
		case k == "":
			add(field, "the property name is empty; give it a name")
		case NormalizeKey(k) != k:
			add(field, "the property name is not normalised (Plankton would store it as %q); write it so", NormalizeKey(k))
		case hasControl(k):
			add(field, "the property name contains control characters; remove them")
		default:
			if n := utf8.RuneCountInString(k); n > MaxPropertyKeyChars {
				add(field, "the property name is %d characters; Plankton allows at most %d (%d with its %q prefix): shorten it",
					n, MaxPropertyKeyChars, MaxPropertyKey, PropertyKeyPrefix)
			}
		}
		switch {
		case !utf8.ValidString(v):
			add(field, "the value is not valid UTF-8; save the metafile as UTF-8")
		case v == "":
			add(field, "the value is empty; Plankton cannot store an empty value (an empty value removes the property): remove it or give it a value")
		case strings.ContainsRune(v, 0):
			add(field, "the value contains a NUL character; remove it")
		default:
			if n := utf8.RuneCountInString(v); n > MaxPropertyValue {
				add(field, "the value is %d characters; Plankton stores at most %d: shorten it", n, MaxPropertyValue)
			}
		}
	}
	if len(md.Properties) > MaxImageProperties {
		add("properties", "%d properties; Plankton stores at most %d per image (%d metadata items, of which name, disk_format, container_format and created_at take %d): remove %d, or remove inherited ones with \"key\": null",
			len(md.Properties), MaxImageProperties, MaxProperties, FixedPlanktonItems, len(md.Properties)-MaxImageProperties)
	}

	seen := map[string]bool{}
	for i, u := range md.Members {
		field := fmt.Sprintf("%s[%d]", ProvMembers, i)
		switch {
		case u == "":
			add(field, "is empty; give a user uuid")
		case !utf8.ValidString(u):
			add(field, "is not valid UTF-8; give a user uuid")
		case u == "*":
			add(field, "\"*\" means everybody; set \"is-public\": true instead")
		case strings.ContainsAny(u, ",;=") || strings.IndexFunc(u, isSpaceOrControl) >= 0:
			add(field, "%q is not a user uuid (it contains a space, control character, ',', ';' or '='); list one uuid per entry", u)
		case len(u) > MaxMemberLen:
			add(field, "is %d bytes, more than the %d a user uuid may have", len(u), MaxMemberLen)
		case seen[u]:
			add(field, "%q is listed twice; list it once", u)
		}
		seen[u] = true
	}

	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

// Validate validates the resolved metadata and names, for each problem, the
// level that set the value.
func (r *Resolved) Validate() error {
	err := Validate(&r.Metadata)
	ve, ok := err.(*ValidationError)
	if !ok {
		return err
	}
	for i := range ve.Problems {
		p := &ve.Problems[i]
		field := p.Field
		if strings.HasPrefix(field, ProvMembers+"[") {
			field = ProvMembers
		}
		p.Source = r.Provenance[field]
	}
	return ve
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }
