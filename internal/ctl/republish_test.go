package ctl

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// cloudEnv is an env whose config points at a sandbox cloud as Alice.
type cloudEnv struct {
	*env
	state   *cloud.State
	catalog *jobs.Catalog
}

func newCloudEnv(t *testing.T) *cloudEnv {
	c := sandboxtest.Start(t, sandbox.Config{BlockSize: 4096})
	e := newEnv(t, "miniredis")
	e.authURL, e.token = c.AuthURL, sandboxtest.Alice.Token
	e.writeConfig()
	st, err := cloud.New(cloud.Options{AuthURL: c.AuthURL, Token: sandboxtest.Alice.Token}).Get(context.Background())
	require.NoError(t, err)
	return &cloudEnv{env: e, state: st, catalog: jobs.NewCatalog([]config.Watch{{Dir: e.root, Container: "images"}}, "n1")}
}

// register uploads and registers an image as its metafiles say now.
func (e *cloudEnv) register(rel string) *image.Image {
	t := e.t
	t.Helper()
	ctx := context.Background()
	f, err := jobs.StatImage(e.catalog.Roots(), filepath.Join(e.root, rel))
	require.NoError(t, err)
	ref, err := e.catalog.Ref(f.Root, f.RelPath)
	require.NoError(t, err)
	file, err := os.Open(f.AbsPath)
	require.NoError(t, err)
	defer file.Close()
	_, err = e.state.Pithos.Upload(ctx, ref.Container, ref.Object, file, pithos.UploadOptions{})
	require.NoError(t, err)
	r, err := jobs.DesiredMetadata(e.catalog, ref, f.ModTime, nil)
	require.NoError(t, err)
	img, _, err := e.state.Images.Reconcile(ctx, image.ReconcileRequest{
		Location: location.Location{Account: e.state.UserUUID, Container: ref.Container, Object: ref.Object}, Desired: r.Metadata,
	})
	require.NoError(t, err)
	_, err = e.state.Images.Publish(ctx, img.ID, r.Metadata.IsPublic, r.Metadata.Members)
	require.NoError(t, err)
	return img
}

func reportByRel(rep jobs.SweepReport) map[string]jobs.SweepImage {
	m := map[string]jobs.SweepImage{}
	for _, im := range rep.Images {
		m[im.RelPath] = im
	}
	return m
}

func TestImagesAndRepublish(t *testing.T) {
	e := newCloudEnv(t)
	writeFile(t, filepath.Join(e.root, "a.diskdump"), "image a")
	writeFile(t, filepath.Join(e.root, "sub", "b.diskdump"), "image b")
	writeFile(t, filepath.Join(e.root, "sub", "_template.meta"), `{"properties": {"OS": "debian"}, "members": ["`+sandboxtest.Bob.UUID+`"]}`)
	imgA := e.register("a.diskdump")
	imgB := e.register("sub/b.diskdump")
	writeFile(t, filepath.Join(e.root, "new.diskdump"), "image new")

	var raw map[string]any
	e.runJSON(&raw, "images")
	assert.Equal(t, sorted("user", "images", "problems", "counts"), keys(t, raw), "no republish fields")
	im0 := raw["images"].([]any)[0]
	assert.Equal(t, sorted("root", "rel_path", "path", "location", "image_id", "name", "public", "members", "state",
		"changes", "error"), keys(t, im0), "no republish fields")

	var doc ImagesDoc
	e.runJSON(&doc, "images")
	assert.Equal(t, sandboxtest.Alice.UUID, doc.User)
	got := map[string]ImageRow{}
	for _, im := range doc.Images {
		got[im.RelPath] = im
	}
	assert.Equal(t, jobs.SweepInSync, got["a.diskdump"].State)
	assert.Equal(t, imgA.ID, got["a.diskdump"].ImageID)
	assert.Equal(t, []string{}, got["a.diskdump"].Members)
	assert.Equal(t, jobs.SweepInSync, got["sub/b.diskdump"].State)
	assert.Equal(t, []string{sandboxtest.Bob.UUID}, got["sub/b.diskdump"].Members)
	assert.Equal(t, "sub/b.diskdump", got["sub/b.diskdump"].Name)
	assert.Equal(t, jobs.SweepUnregistered, got["new.diskdump"].State)

	code, out, errOut := e.run("images")
	require.Equal(t, 0, code, errOut)
	for _, s := range []string{imgA.ID, imgB.ID, sandboxtest.Bob.UUID, "in-sync", "unregistered", "3 image(s): 2 in-sync, 1 unregistered."} {
		assert.Contains(t, out, s)
	}
	assert.NotContains(t, out+errOut, sandboxtest.Alice.Token)

	// The template changes: b drifts; a dry run reports it and queues nothing.
	writeFile(t, filepath.Join(e.root, "sub", "_template.meta"), `{"properties": {"OS": "debian-12"}, "members": ["`+sandboxtest.Bob.UUID+`"]}`)
	var rep jobs.SweepReport
	e.runJSON(&rep, "republish", "--dry-run")
	gotRep := reportByRel(rep)
	assert.True(t, rep.DryRun)
	assert.Equal(t, jobs.SweepInSync, gotRep["a.diskdump"].State)
	assert.Equal(t, jobs.SweepDrifted, gotRep["sub/b.diskdump"].State)
	assert.Equal(t, []string{`property os: "debian" -> "debian-12"`}, gotRep["sub/b.diskdump"].Changes)
	queues, err := e.insp.Queues()
	require.NoError(t, err)
	assert.Empty(t, queues, "a dry run enqueues nothing")
	code, out, _ = e.run("republish", "--dry-run")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "would queue "+gotRep["sub/b.diskdump"].Task)
	assert.Contains(t, out, "Dry run: nothing was queued.")

	// For real: b's registration and new's upload are queued.
	e.runJSON(&rep, "republish")
	gotRep = reportByRel(rep)
	assert.Equal(t, 2, rep.Enqueued)
	ti, err := e.insp.GetTaskInfo(jobs.NodeQueue("n1"), gotRep["sub/b.diskdump"].Task)
	require.NoError(t, err)
	assert.Equal(t, asynq.TaskStatePending, ti.State)
	var p jobs.RegisterPayload
	require.NoError(t, json.Unmarshal(ti.Payload, &p))
	assert.True(t, p.Force)
	_, err = e.insp.GetTaskInfo(jobs.UploadQueue("n1"), gotRep["new.diskdump"].Task)
	require.NoError(t, err)
	_, err = e.insp.GetTaskInfo(jobs.NodeQueue("n1"), gotRep["a.diskdump"].Task)
	assert.Error(t, err, "a is in sync: nothing queued for it")

	code, out, _ = e.run("republish", "--force")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "1 task(s) queued.", "only a's registration is new; b's and new's are already queued")

	// An image whose metadata cannot be built makes republish fail (1),
	// after reporting the rest.
	writeFile(t, filepath.Join(e.root, "a.diskdump.meta"), `{"disk-format": "vmdk"}`)
	code, out, errOut = e.run("republish", "--dry-run")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "vmdk")
	assert.Contains(t, errOut, "1 image(s) could not be compared or queued")
	code, _, _ = e.run("images")
	assert.Equal(t, 0, code, "images only reports")
}

func TestRepublishBadToken(t *testing.T) {
	e := newCloudEnv(t)
	e.token = "not-alices-token-123"
	e.writeConfig()
	writeFile(t, filepath.Join(e.root, "a.diskdump"), "image a")
	code, out, errOut := e.run("republish", "--dry-run")
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "token was rejected")
	assert.NotContains(t, errOut, e.token)

	e.token = ""
	e.writeConfig()
	code, _, errOut = e.run("images")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no token")
}
