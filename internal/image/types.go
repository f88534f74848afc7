// Package image is the Plankton (Synnefo image service) client and the
// metafile model: parsing kamaki .meta files, merging templates by
// precedence, validating, rendering, and reconciling a registered image with
// the desired metadata.
package image

import (
	"strings"
)

// Allowed formats, as Plankton validates them.
var (
	DiskFormats      = []string{"diskdump", "extdump", "ntfsdump"}
	ContainerFormats = []string{"aki", "ari", "ami", "bare", "ovf"}
)

// Limits enforced by Plankton / Pithos on image metadata.
const (
	MaxPropertyKey   = 111 // bytes of a property key (128 - len("plankton") - len("property:"))
	MaxPropertyValue = 256 // bytes of a property value
	MaxProperties    = 32  // Pithos metadata items per domain
)

// Metadata is what a user controls about an image: the desired state built
// from defaults, templates and metafiles, and compared with the registered one.
type Metadata struct {
	Name            string
	DiskFormat      string
	ContainerFormat string
	IsPublic        bool
	// Properties are keyed by their normalised name (see NormalizeKey).
	Properties map[string]string
	// Members are user uuids the image is shared with (an imagesync
	// extension to kamaki's metafile format).
	Members []string
}

// Image is a registered image as Plankton reports it.
type Image struct {
	ID              string
	Name            string
	DiskFormat      string
	ContainerFormat string
	Status          string
	Owner           string
	Checksum        string
	Location        string
	Size            int64
	IsPublic        bool
	IsSnapshot      bool
	Description     string
	CreatedAt       string
	UpdatedAt       string
	DeletedAt       string
	Properties      map[string]string
}

// NormalizeKey is Plankton's normalisation of metadata and property names:
// lowercase, with every ASCII punctuation character replaced by '_'. So
// "OS-Type", "os_type" and "OS.TYPE" name the same property.
func NormalizeKey(k string) string {
	k = strings.ToLower(k)
	var b strings.Builder
	for _, r := range k {
		if r < 0x80 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r) {
			b.WriteByte('_')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
