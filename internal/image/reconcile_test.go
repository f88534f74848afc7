package image

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

func desiredMD(name string, props map[string]string) Metadata {
	if props == nil {
		props = map[string]string{}
	}
	return Metadata{Name: name, DiskFormat: "diskdump", ContainerFormat: "bare", Properties: props}
}

// matches asserts that img is exactly md (members aside).
func matches(t *testing.T, md Metadata, img *Image) {
	t.Helper()
	require.NotNil(t, img)
	assert.Equal(t, md.Name, img.Name)
	assert.Equal(t, md.DiskFormat, img.DiskFormat)
	assert.Equal(t, md.ContainerFormat, img.ContainerFormat)
	assert.Equal(t, md.IsPublic, img.IsPublic)
	assert.Equal(t, md.Properties, img.Properties)
}

func TestReconcileIdempotent(t *testing.T) {
	for _, withHint := range []bool{false, true} {
		t.Run(fmt.Sprintf("hint=%v", withHint), func(t *testing.T) {
			e := newPlEnv(t)
			loc, uuid, hash := e.upload(t, sandboxtest.Alice, "images", "deb/debian 12.diskdump", imageData("d", 2500))
			hint := ""
			if withHint {
				hint = uuid
			}
			md := desiredMD("Debian 12", map[string]string{"os": "debian", "users": "root"})
			md.IsPublic = true
			req := ReconcileRequest{Location: loc, Desired: md, ImageID: hint, Checksum: hash}

			img, res, err := e.alice.Reconcile(e.ctx, req)
			require.NoError(t, err)
			matches(t, md, img)
			assert.Equal(t, uuid, img.ID)
			assert.True(t, res.Registered)
			assert.False(t, res.WasRegistered)
			assert.False(t, res.Empty())
			assert.Equal(t, 1, e.aliceRec.writes(), "one POST, nothing to fix")

			before := e.cloud.Stats()
			e.aliceRec.reset()
			img2, res2, err := e.alice.Reconcile(e.ctx, req)
			require.NoError(t, err)
			assert.Equal(t, img, img2)
			assert.True(t, res2.Empty(), "%v", res2.Strings())
			assert.False(t, res2.Registered)
			assert.True(t, res2.WasRegistered)
			assert.Zero(t, e.aliceRec.writes(), "the second call only reads")
			if withHint {
				assert.Len(t, e.aliceRec.all(), 1, "one HEAD by id")
			}
			after := e.cloud.Stats()
			assert.Equal(t, before.ImageRegisters, after.ImageRegisters)
			assert.Equal(t, before.ImageUpdates, after.ImageUpdates)
		})
	}
}

func TestReconcileOverridesProperties(t *testing.T) {
	e := newPlEnv(t)
	loc, uuid, _ := e.upload(t, sandboxtest.Alice, "images", "o.diskdump", imageData("o", 10))
	// Registered by hand (as kamaki would) with properties imagesync no
	// longer wants.
	_, err := e.alice.Register(e.ctx, "Old", loc, RegisterParams{
		ContainerFormat: "ovf",
		Properties:      map[string]string{"os": "linux", "user": "someuser", "greet": "hi"},
	})
	require.NoError(t, err)

	md := desiredMD("New", map[string]string{"os": "linux", "user": "root"})
	e.aliceRec.reset()
	img, res, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: md})
	require.NoError(t, err)
	matches(t, md, img)
	assert.Equal(t, uuid, img.ID, "re-registration keeps the id")
	assert.True(t, res.Registered)
	assert.True(t, res.WasRegistered)
	assert.Equal(t, &StringChange{"Old", "New"}, res.Name)
	assert.Equal(t, &StringChange{"ovf", "bare"}, res.ContainerFormat)
	assert.Equal(t, []string{"greet"}, res.DeleteProperties())
	assert.Equal(t, map[string]string{"user": "root"}, res.SetProperties())
	assert.Equal(t, 2, e.aliceRec.writes(), "one PUT removing greet, one POST")

	head, err := e.alice.Get(e.ctx, img.ID)
	require.NoError(t, err)
	matches(t, md, head)

	// Dropping every property.
	empty := desiredMD("New", nil)
	img, res, err = e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: empty, ImageID: uuid})
	require.NoError(t, err)
	assert.Empty(t, img.Properties)
	assert.ElementsMatch(t, []string{"os", "user"}, res.DeleteProperties())
}

func TestReconcileStaysWithinMetadataLimit(t *testing.T) {
	// 20 registered properties replaced by 20 others: merged by a POST they
	// would be 40, more than Plankton stores.
	e := newPlEnv(t)
	loc, _, _ := e.upload(t, sandboxtest.Alice, "images", "l.diskdump", imageData("l", 10))
	old, want := map[string]string{}, map[string]string{}
	for i := range 20 {
		old[fmt.Sprintf("old_%02d", i)] = "x"
		want[fmt.Sprintf("new_%02d", i)] = "y"
	}
	_, err := e.alice.Register(e.ctx, "L", loc, RegisterParams{Properties: old})
	require.NoError(t, err)
	md := desiredMD("L", want)
	img, res, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: md})
	require.NoError(t, err)
	assert.True(t, res.Registered)
	matches(t, md, img)
}

func TestReconcileOddNames(t *testing.T) {
	e := newPlEnv(t)
	names := []string{
		"with space.diskdump",
		`quote"and'apostrophe.diskdump`,
		"hash#sign.diskdump",
		"percent%20literal 50%.diskdump",
		"question?mark&amp=1.diskdump",
		"ελληνικά/日本語 ü.diskdump",
		"plus+tilde~comma,semi;colon:.diskdump",
	}
	for i, obj := range names {
		t.Run(obj, func(t *testing.T) {
			container := "cont " + []string{"#1", "%2", "?3", "ü4", "'5", "\"6", "7+"}[i]
			loc, uuid, _ := e.upload(t, sandboxtest.Alice, container, obj, imageData(obj, 3))
			name := "Image " + obj + ` "#%?ü`
			md := desiredMD(name, map[string]string{
				"description": "value with %20, #, ?, & and ü",
				"größe":       "100%",
				"os_type":     "lin/ux",
			})
			img, res, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: md})
			require.NoError(t, err)
			assert.True(t, res.Registered)
			matches(t, md, img)
			assert.Equal(t, uuid, img.ID)
			got, err := img.ParseLocation()
			require.NoError(t, err)
			assert.Equal(t, loc, got)

			// Found again through the listing (no hint), with no writes.
			e.aliceRec.reset()
			img2, res2, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: md})
			require.NoError(t, err)
			assert.True(t, res2.Empty(), "%v", res2.Strings())
			assert.Equal(t, img.ID, img2.ID)
			assert.Zero(t, e.aliceRec.writes())
		})
	}
}

func TestReconcileValidatesFirst(t *testing.T) {
	e := newPlEnv(t)
	loc := location.Location{Account: sandboxtest.Alice.UUID, Container: "images", Object: "v.diskdump"}
	noAccount := loc
	noAccount.Account = ""
	tooMany := map[string]string{}
	for i := range MaxProperties + 1 {
		tooMany[fmt.Sprintf("p%d", i)] = "v"
	}
	tests := []struct {
		name       string
		loc        location.Location
		md         Metadata
		validation bool
	}{
		{"empty name", loc, desiredMD("", nil), true},
		{"disk format", loc, Metadata{Name: "x", DiskFormat: "qcow2", ContainerFormat: "bare"}, true},
		{"container format", loc, Metadata{Name: "x", DiskFormat: "diskdump", ContainerFormat: "baree"}, true},
		{"too many properties", loc, desiredMD("x", tooMany), true},
		{"long value", loc, desiredMD("x", map[string]string{"k": string(make([]byte, MaxPropertyValue+1))}), true},
		{"non-normalised key", loc, desiredMD("x", map[string]string{"OS-Type": "x"}), true},
		{"bad member", loc, Metadata{Name: "x", DiskFormat: "diskdump", ContainerFormat: "bare", Members: []string{"*"}}, true},
		{"no account", noAccount, desiredMD("x", nil), false},
		{"dot-dot", location.Location{Account: "a", Container: "c", Object: "../x"}, desiredMD("x", nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.aliceRec.reset()
			_, _, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: tt.loc, Desired: tt.md})
			require.Error(t, err)
			var ve *ValidationError
			assert.Equal(t, tt.validation, errors.As(err, &ve), "%v", err)
			assert.Empty(t, e.aliceRec.all(), "no request before validation")
		})
	}
}

func TestReconcileChecksumAndHints(t *testing.T) {
	e := newPlEnv(t)
	loc, uuid, hash := e.upload(t, sandboxtest.Alice, "images", "c.diskdump", imageData("c", 10))
	other, otherUUID, _ := e.upload(t, sandboxtest.Alice, "images", "other.diskdump", imageData("q", 10))
	md := desiredMD("C", nil)
	bad := "0000000000000000000000000000000000000000000000000000000000000000"

	// Not registered: the server checks the checksum.
	_, _, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: md, Checksum: bad})
	require.Error(t, err)
	assert.Equal(t, http.StatusBadRequest, rest.StatusOf(err))
	assert.Contains(t, err.Error(), "Invalid checksum field")

	// A hint that is no image: the file is taken as unregistered.
	img, res, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: md, ImageID: "00000000-0000-4000-8000-00000000abcd", Checksum: hash})
	require.NoError(t, err)
	assert.True(t, res.Registered)
	assert.Equal(t, uuid, img.ID)

	// Registered: a different checksum stops everything before any write.
	e.aliceRec.reset()
	_, _, err = e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: desiredMD("C2", nil), ImageID: uuid, Checksum: bad})
	require.ErrorIs(t, err, ErrChecksumMismatch)
	assert.Contains(t, err.Error(), "re-upload")
	assert.Zero(t, e.aliceRec.writes())

	// A hint naming another image, or that is not a uuid: found by listing.
	_, err = e.alice.Register(e.ctx, "Other", other, RegisterParams{})
	require.NoError(t, err)
	for _, hint := range []string{otherUUID, "not-a-uuid"} {
		e.aliceRec.reset()
		img, res, err = e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: md, ImageID: hint, Checksum: hash})
		require.NoError(t, err, hint)
		assert.Equal(t, uuid, img.ID, hint)
		assert.True(t, res.Empty(), "%s: %v", hint, res.Strings())
		assert.Zero(t, e.aliceRec.writes(), hint)
	}

	// Somebody else's file.
	bobLoc, _, _ := e.upload(t, sandboxtest.Bob, "images", "b.diskdump", imageData("b", 10))
	_, _, err = e.alice.Reconcile(e.ctx, ReconcileRequest{Location: bobLoc, Desired: md})
	require.Error(t, err)
	assert.True(t, IsForbidden(err), "%v", err)
}

func TestPublish(t *testing.T) {
	e := newPlEnv(t)
	loc, uuid, _ := e.upload(t, sandboxtest.Alice, "images", "p.diskdump", imageData("p", 10))
	md := desiredMD("P", nil)
	img, _, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: md})
	require.NoError(t, err)
	bob := sandboxtest.Bob.UUID

	// Fresh registration, private, no members: nothing to write.
	e.aliceRec.reset()
	changed, err := e.alice.Publish(e.ctx, img.ID, false, nil)
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Zero(t, e.aliceRec.writes())

	changed, err = e.alice.Publish(e.ctx, img.ID, false, []string{bob})
	require.NoError(t, err)
	assert.True(t, changed)
	members, err := e.alice.ListMembers(e.ctx, uuid)
	require.NoError(t, err)
	assert.Equal(t, []string{bob}, members)
	_, err = e.bob.Get(e.ctx, uuid)
	require.NoError(t, err, "shared with bob")

	changed, err = e.alice.Publish(e.ctx, img.ID, true, []string{bob})
	require.NoError(t, err)
	assert.True(t, changed)
	got, err := e.alice.Get(e.ctx, uuid)
	require.NoError(t, err)
	assert.True(t, got.IsPublic)
	members, err = e.alice.ListMembers(e.ctx, uuid)
	require.NoError(t, err)
	assert.Equal(t, []string{bob}, members, "publishing keeps the members")

	before := e.cloud.Stats()
	e.aliceRec.reset()
	changed, err = e.alice.Publish(e.ctx, img.ID, true, []string{bob, bob, sandboxtest.Alice.UUID})
	require.NoError(t, err)
	assert.False(t, changed, "idempotent (duplicates and the owner do not count)")
	assert.Zero(t, e.aliceRec.writes())
	assert.Equal(t, before.ImageUpdates, e.cloud.Stats().ImageUpdates)

	// A re-registration drops members; publishing again restores them.
	md.IsPublic = true
	md.Name = "P renamed"
	_, res, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: md, ImageID: uuid})
	require.NoError(t, err)
	require.True(t, res.Registered)
	members, err = e.alice.ListMembers(e.ctx, uuid)
	require.NoError(t, err)
	assert.NotContains(t, members, bob)
	changed, err = e.alice.Publish(e.ctx, uuid, true, []string{bob})
	require.NoError(t, err)
	assert.True(t, changed)
	members, err = e.alice.ListMembers(e.ctx, uuid)
	require.NoError(t, err)
	assert.Equal(t, []string{bob}, members)

	// Unpublish and unshare.
	changed, err = e.alice.Publish(e.ctx, uuid, false, nil)
	require.NoError(t, err)
	assert.True(t, changed)
	_, err = e.bob.Get(e.ctx, uuid)
	assert.True(t, IsForbidden(err), "%v", err)

	// Only the owner publishes.
	_, err = e.alice.Publish(e.ctx, uuid, true, nil)
	require.NoError(t, err)
	_, err = e.bob.Publish(e.ctx, uuid, false, nil)
	assert.True(t, IsForbidden(err), "%v", err)

	e.aliceRec.reset()
	_, err = e.alice.Publish(e.ctx, uuid, true, []string{"*"})
	require.Error(t, err)
	_, err = e.alice.Publish(e.ctx, "", true, nil)
	require.Error(t, err)
	assert.Empty(t, e.aliceRec.all())
}
