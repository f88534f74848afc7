package image

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// seedMetafile is the metafile of the kamaki guide's section 5.5 after the
// user edited it (made valid JSON: the guide's listing lost its braces).
const seedMetafile = `{
  "status": "available",
  "name": "Debian Base Gama",
  "checksum": "3cb03556ec971f...e8dd6190443b560cb7",
  "id": "7h1rd-1m4g3-1d2",
  "updated-at": "2013-06-19 08:01:00",
  "created-at": "2013-06-19 08:00:22",
  "properties": {
    "OS": "Linux",
    "USER": "root"
  },
  "location": "pithos://s0m3-u53r-1d/pithos/debian_base3.diskdump",
  "is-public": "False",
  "owner": "s0m3-u53r-1d",
  "disk-format": "diskdump",
  "size": "903471104",
  "deleted-at": "",
  "container-format": "bare"
}`

// TestSeedScenario replays the kamaki image registration guide (seeds/000,
// "5. Image registration") against the sandbox, with this package's client
// in kamaki's place.
func TestSeedScenario(t *testing.T) {
	e := newPlEnv(t)
	ctx := e.ctx
	alice, bob := sandboxtest.Alice, sandboxtest.Bob
	ids := func(imgs []*Image) []string {
		var out []string
		for _, i := range imgs {
			out = append(out, i.ID)
		}
		return out
	}

	// Another user's image, public, so that it shows in Alice's listing.
	bobLoc, _, _ := e.upload(t, bob, "pithos", "beta.diskdump", imageData("beta", 100))
	bobImg, err := e.bob.Register(ctx, "Beta Debian Base", bobLoc, RegisterParams{IsPublic: true})
	require.NoError(t, err)

	// 5.1 Upload, then register with the name 'Debian Base Alpha'.
	loc, uuid, hash := e.upload(t, alice, "pithos", "debian_base3.diskdump", imageData("debian", 700))
	img, err := e.alice.Register(ctx, "Debian Base Alpha", loc, RegisterParams{})
	require.NoError(t, err)
	assert.Equal(t, hash, img.Checksum)
	assert.Equal(t, "bare", img.ContainerFormat)
	assert.Equal(t, "diskdump", img.DiskFormat)
	assert.Equal(t, uuid, img.ID)
	assert.False(t, img.IsPublic)
	assert.Equal(t, "pithos://"+alice.UUID+"/pithos/debian_base3.diskdump", img.Location)
	assert.Equal(t, "Debian Base Alpha", img.Name)
	assert.Equal(t, alice.UUID, img.Owner)
	assert.EqualValues(t, 4200, img.Size)
	assert.Equal(t, "AVAILABLE", img.Status)
	assert.NotEmpty(t, img.CreatedAt)
	assert.NotEmpty(t, img.UpdatedAt)
	// kamaki then uploads the metafile beside the image.
	metaLoc := MetafileLocation(loc)
	assert.Equal(t, "debian_base3.diskdump.meta", metaLoc.Object)
	meta, err := RenderMetafile(img, alice.Name)
	require.NoError(t, err)
	metaPath := metaLoc.Account + "/" + metaLoc.Container + "/" + metaLoc.Object
	resp := e.pithos(t, alice, http.MethodPut, metaPath, meta, map[string]string{"Content-Type": "application/json"})
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	// 5.2 All the images Alice can see, then only hers.
	all, err := e.alice.List(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{img.ID, bobImg.ID}, ids(all))
	mine, err := e.alice.ListDetail(ctx, ListOptions{Owner: alice.UUID})
	require.NoError(t, err)
	assert.Equal(t, []string{img.ID}, ids(mine))

	// 5.3 Unregister hers; then try somebody else's.
	require.NoError(t, e.alice.Unregister(ctx, img.ID))
	mine, err = e.alice.ListDetail(ctx, ListOptions{Owner: alice.UUID})
	require.NoError(t, err)
	assert.Empty(t, mine)
	err = e.alice.Unregister(ctx, bobImg.ID)
	require.Error(t, err)
	assert.True(t, IsForbidden(err), "%v", err)
	assert.Contains(t, err.Error(), "only the image's owner can unregister it")
	_, err = e.bob.Get(ctx, bobImg.ID)
	require.NoError(t, err, "still registered")

	// 5.4 Register with properties: the metafile from 5.1 is in the way
	// unless forced.
	metafileExists := func() bool {
		resp := e.pithos(t, alice, http.MethodHead, metaPath, nil, nil)
		require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, resp.StatusCode)
		return resp.StatusCode == http.StatusOK
	}
	registerUnlessMetafile := func(force bool, name string, p RegisterParams) (*Image, bool) {
		if metafileExists() && !force {
			return nil, false // kamaki: "Metadata file ... already exists"
		}
		img, err := e.alice.Register(ctx, name, loc, p)
		require.NoError(t, err)
		return img, true
	}
	props := RegisterParams{Properties: map[string]string{"OS": "Linux", "user": "someuser"}}
	_, done := registerUnlessMetafile(false, "Debian Base Gama", props)
	assert.False(t, done, "an existing metafile stops the registration")
	mine, err = e.alice.ListDetail(ctx, ListOptions{Owner: alice.UUID})
	require.NoError(t, err)
	assert.Empty(t, mine, "nothing was registered")
	img, done = registerUnlessMetafile(true, "Debian Base Gama", props)
	require.True(t, done)
	assert.Equal(t, uuid, img.ID, "the image id is the object's: the same after unregister and register")
	assert.Equal(t, map[string]string{"os": "Linux", "user": "someuser"}, img.Properties, "keys as Plankton normalises them")

	// A property added by hand, not in the metafile below: the
	// re-registration must drop it (override, not merge).
	_, err = e.alice.Update(ctx, img.ID, UpdateParams{SetProperties: map[string]string{"greet": "hi"}})
	require.NoError(t, err)

	// 5.5 Register from the (edited) metafile, with a name given
	// explicitly, which wins over the metafile's.
	parsed, err := ParseMetafile("debian_base3.diskdump.meta", []byte(seedMetafile))
	require.NoError(t, err)
	assert.NotEmpty(t, parsed.Warnings, "server-set fields are ignored with warnings")
	cmdline := &Metafile{Source: "command line", Name: strp("Debian Base Delta")}
	resolved, err := Resolve(ResolveInput{RelPath: "debian_base3.diskdump", Templates: []*Metafile{parsed}, PerImage: cmdline})
	require.NoError(t, err)
	require.NoError(t, resolved.Validate())
	img, res, err := e.alice.Reconcile(ctx, ReconcileRequest{Location: loc, Desired: resolved.Metadata, ImageID: uuid, Checksum: hash})
	require.NoError(t, err)
	assert.True(t, res.Registered)
	assert.Equal(t, uuid, img.ID)
	assert.Equal(t, "Debian Base Delta", img.Name)
	assert.Equal(t, map[string]string{"os": "Linux", "user": "root"}, img.Properties)
	assert.Equal(t, []string{"greet"}, res.DeleteProperties())

	// 5.6 Metadata and property modification.
	img, err = e.alice.Update(ctx, uuid, UpdateParams{Name: strp("Changed Name")})
	require.NoError(t, err)
	assert.Equal(t, "Changed Name", img.Name)
	img, err = e.alice.Get(ctx, uuid)
	require.NoError(t, err)
	assert.Equal(t, "Changed Name", img.Name)
	assert.Equal(t, map[string]string{"os": "Linux", "user": "root"}, img.Properties, "a rename keeps the properties")

	// Publish (restoring the name), then unpublish.
	_, err = e.bob.Get(ctx, uuid)
	assert.True(t, IsForbidden(err), "%v", err)
	img, err = e.alice.Update(ctx, uuid, UpdateParams{IsPublic: boolp(true), Name: strp("Debian Base Gama")})
	require.NoError(t, err)
	assert.True(t, img.IsPublic)
	assert.Equal(t, "Debian Base Gama", img.Name)
	seen, err := e.bob.Get(ctx, uuid)
	require.NoError(t, err, "public: bob can read it")
	assert.Equal(t, "Debian Base Gama", seen.Name)
	bobList, err := e.bob.List(ctx)
	require.NoError(t, err)
	assert.Contains(t, ids(bobList), uuid)
	img, err = e.alice.Update(ctx, uuid, UpdateParams{IsPublic: boolp(false)})
	require.NoError(t, err)
	assert.False(t, img.IsPublic)
	_, err = e.bob.Get(ctx, uuid)
	assert.True(t, IsForbidden(err), "%v", err)
	bobList, err = e.bob.List(ctx)
	require.NoError(t, err)
	assert.NotContains(t, ids(bobList), uuid)

	// Properties: set, set two, delete one.
	img, err = e.alice.Update(ctx, uuid, UpdateParams{SetProperties: map[string]string{"user": "user"}})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"os": "Linux", "user": "user"}, img.Properties)
	img, err = e.alice.Update(ctx, uuid, UpdateParams{SetProperties: map[string]string{"greet": "Hi there", "user": "root"}})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"os": "Linux", "user": "root", "greet": "Hi there"}, img.Properties)
	img, err = e.alice.Update(ctx, uuid, UpdateParams{DeleteProperties: []string{"greet"}})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"os": "Linux", "user": "root"}, img.Properties)

	// 5.7.1 A per-image property wins over the metafile used as a
	// template. (The guide's printed output still shows USER root, which
	// contradicts its own text; the text is what imagesync implements.)
	cmdline.Properties = map[string]*string{"user": strp("admin")}
	resolved, err = Resolve(ResolveInput{RelPath: "debian_base3.diskdump", Templates: []*Metafile{parsed}, PerImage: cmdline})
	require.NoError(t, err)
	img, res, err = e.alice.Reconcile(ctx, ReconcileRequest{Location: loc, Desired: resolved.Metadata, ImageID: uuid})
	require.NoError(t, err)
	assert.True(t, res.Registered)
	assert.Equal(t, "Debian Base Delta", img.Name)
	assert.Equal(t, map[string]string{"os": "Linux", "user": "admin"}, img.Properties)

	// 5.7 Re-registration keeps the id and drops members.
	changed, err := e.alice.Publish(ctx, uuid, false, []string{bob.UUID})
	require.NoError(t, err)
	assert.True(t, changed)
	_, err = e.bob.Get(ctx, uuid)
	require.NoError(t, err, "shared with bob")
	desired := resolved.Metadata
	desired.Name = "Debian Base Epsilon"
	img, res, err = e.alice.Reconcile(ctx, ReconcileRequest{Location: loc, Desired: desired})
	require.NoError(t, err)
	assert.True(t, res.Registered)
	assert.Equal(t, uuid, img.ID)
	_, err = e.bob.Get(ctx, uuid)
	assert.True(t, IsForbidden(err), "the registration dropped bob: %v", err)
	changed, err = e.alice.Publish(ctx, uuid, false, []string{bob.UUID})
	require.NoError(t, err)
	assert.True(t, changed)
	_, err = e.bob.Get(ctx, uuid)
	require.NoError(t, err, "publish restored the membership")
	changed, err = e.alice.Publish(ctx, uuid, false, nil)
	require.NoError(t, err)
	assert.True(t, changed)

	// 5.9 Batch registration of a folder, images named after their
	// relative paths, public.
	var batch []string
	for _, rel := range []string{"images/debian.diskdump", "images/win8.diskdump"} {
		l, id, _ := e.upload(t, alice, "pithos", rel, imageData(rel, 50))
		md := Metadata{Name: rel, DiskFormat: "diskdump", ContainerFormat: "bare", IsPublic: true, Properties: map[string]string{}}
		img, res, err := e.alice.Reconcile(ctx, ReconcileRequest{Location: l, Desired: md, ImageID: id})
		require.NoError(t, err, rel)
		assert.True(t, res.Registered)
		assert.Equal(t, rel, img.Name)
		assert.True(t, img.IsPublic)
		assert.Equal(t, location.Location{Account: alice.UUID, Container: "pithos", Object: rel}, l)
		batch = append(batch, id)
	}
	bobList, err = e.bob.ListDetail(ctx, ListOptions{Owner: alice.UUID, SortKey: "name"})
	require.NoError(t, err)
	assert.Equal(t, batch, ids(bobList), "public images of alice, as bob sees them")
	assert.Equal(t, "images/debian.diskdump", bobList[0].Name)
	assert.Equal(t, "images/win8.diskdump", bobList[1].Name)
}
