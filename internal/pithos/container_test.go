package pithos

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// startCloudClient starts a sandbox with 1 KiB blocks and returns Alice's client.
func startCloudClient(t *testing.T, cfg sandbox.Config) (*sandboxtest.Cloud, *Client) {
	t.Helper()
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 1024
	}
	cloud := sandboxtest.Start(t, cfg)
	return cloud, clientAs(cloud, sandboxtest.Alice, nil)
}

// clientAs returns u's client; wrap, if set, wraps the HTTP client (to
// record what is sent).
func clientAs(cloud *sandboxtest.Cloud, u sandbox.User, wrap func(rest.Doer) rest.Doer) *Client {
	var d rest.Doer = &http.Client{Timeout: 30 * time.Second}
	if wrap != nil {
		d = wrap(d)
	}
	return New(cloud.PithosURL(), u.UUID, u.Token, d)
}

// headerRecorder keeps the headers of every request it passes on.
type headerRecorder struct {
	next rest.Doer
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *headerRecorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(context.Background()))
	r.mu.Unlock()
	return r.next.Do(req)
}

func (r *headerRecorder) last() *http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reqs[len(r.reqs)-1]
}

func mustCreate(t *testing.T, c *Client, container string, opts *ContainerOptions) {
	t.Helper()
	_, err := c.CreateContainer(context.Background(), container, opts)
	require.NoError(t, err)
}

func mustPut(t *testing.T, c *Client, container, object string, data []byte, opts *PutOptions) *WriteResult {
	t.Helper()
	res, err := c.PutObject(context.Background(), container, object, data, opts)
	require.NoError(t, err, "%s/%s", container, object)
	return res
}

func readObject(t *testing.T, c *Client, container, object string, opts *GetOptions) ([]byte, *ObjectInfo) {
	t.Helper()
	body, info, err := c.GetObject(context.Background(), container, object, opts)
	require.NoError(t, err, "%s/%s", container, object)
	defer body.Close()
	data, err := io.ReadAll(body)
	require.NoError(t, err)
	return data, info
}

func quota(n int64) *int64 { return &n }

func TestCreateContainerAndInfo(t *testing.T) {
	_, c := startCloudClient(t, sandbox.Config{})
	ctx := context.Background()

	created, err := c.CreateContainer(ctx, "images", &ContainerOptions{
		Versioning: "none",
		Quota:      quota(5000),
		Meta:       map[string]string{"Color": "blue", "ünï": "välue ü%20"},
	})
	require.NoError(t, err)
	assert.True(t, created)

	ci, err := c.ContainerInfo(ctx, "images")
	require.NoError(t, err)
	assert.Equal(t, "images", ci.Name)
	assert.EqualValues(t, 1024, ci.BlockSize)
	assert.Equal(t, "sha256", ci.BlockHash)
	assert.Equal(t, "none", ci.Versioning)
	assert.EqualValues(t, 5000, ci.Quota)
	assert.Equal(t, sandboxtest.Alice.UUID, ci.Project)
	assert.EqualValues(t, 0, ci.ObjectCount)
	assert.EqualValues(t, 0, ci.BytesUsed)
	assert.Equal(t, map[string]string{"color": "blue", "ünï": "välue ü%20"}, ci.Meta)
	assert.WithinDuration(t, time.Now(), ci.LastModified, time.Minute)

	// An existing container: 202, and policies and meta are merged.
	created, err = c.CreateContainer(ctx, "images", &ContainerOptions{Versioning: "auto", Meta: map[string]string{"size": "L"}})
	require.NoError(t, err)
	assert.False(t, created)
	ci, err = c.ContainerInfo(ctx, "images")
	require.NoError(t, err)
	assert.Equal(t, "auto", ci.Versioning)
	assert.EqualValues(t, 5000, ci.Quota)
	assert.Equal(t, "blue", ci.Meta["color"])
	assert.Equal(t, "L", ci.Meta["size"])

	// Defaults.
	created, err = c.CreateContainer(ctx, "plain", nil)
	require.NoError(t, err)
	assert.True(t, created)
	ci, err = c.ContainerInfo(ctx, "plain")
	require.NoError(t, err)
	assert.Equal(t, "auto", ci.Versioning)
	assert.EqualValues(t, 0, ci.Quota)
	assert.Empty(t, ci.Meta)
}

func TestCreateContainerRejectsBadPolicies(t *testing.T) {
	_, c := startCloudClient(t, sandbox.Config{})
	_, err := c.CreateContainer(context.Background(), "x", &ContainerOptions{Versioning: "sometimes"})
	assert.ErrorContains(t, err, "want auto or none")
	_, err = c.CreateContainer(context.Background(), "x", &ContainerOptions{Quota: quota(-1)})
	assert.ErrorContains(t, err, "negative quota")
	_, err = c.ContainerInfo(context.Background(), "x")
	assert.True(t, IsNotFound(err), "nothing was created: %v", err)
}

func TestContainerInfoMissing(t *testing.T) {
	_, c := startCloudClient(t, sandbox.Config{})
	_, err := c.ContainerInfo(context.Background(), "nope")
	require.Error(t, err)
	assert.True(t, IsNotFound(err))
	var re *rest.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusNotFound, re.Status)
}

func TestListAndDeleteContainers(t *testing.T) {
	_, c := startCloudClient(t, sandbox.Config{})
	ctx := context.Background()

	list, err := c.ListContainers(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)

	names := []string{"a", "b c", "ü-ñ", "x#y%z?"}
	for _, n := range names {
		mustCreate(t, c, n, nil)
	}
	mustCreate(t, c, "quoted", &ContainerOptions{Quota: quota(777), Versioning: "none"})
	mustPut(t, c, "a", "obj", []byte("hello"), nil)

	c.listPage = 2 // page through the listing
	list, err = c.ListContainers(ctx)
	require.NoError(t, err)
	var got []string
	byName := map[string]ContainerEntry{}
	for _, e := range list {
		got = append(got, e.Name)
		byName[e.Name] = e
	}
	want := append(append([]string(nil), names...), "quoted")
	sort.Strings(want)
	assert.Equal(t, want, got)
	assert.EqualValues(t, 1, byName["a"].Count)
	assert.EqualValues(t, 5, byName["a"].Bytes)
	assert.EqualValues(t, 777, byName["quoted"].Quota)
	assert.Equal(t, "none", byName["quoted"].Versioning)
	assert.Equal(t, sandboxtest.Alice.UUID, byName["quoted"].Project)
	assert.False(t, byName["a"].LastModified.IsZero())

	// A non-empty container cannot be deleted.
	err = c.DeleteContainer(ctx, "a")
	require.Error(t, err)
	assert.True(t, IsConflict(err), "%v", err)
	require.NoError(t, c.DeleteObject(ctx, "a", "obj"))
	require.NoError(t, c.DeleteContainer(ctx, "a"))
	_, err = c.ContainerInfo(ctx, "a")
	assert.True(t, IsNotFound(err))
	assert.True(t, IsNotFound(c.DeleteContainer(ctx, "a")))

	require.NoError(t, c.DeleteContainer(ctx, "x#y%z?"))
	list, err = c.ListContainers(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 3)
}

func TestAccountInfo(t *testing.T) {
	_, c := startCloudClient(t, sandbox.Config{Quota: 1 << 20})
	ctx := context.Background()
	mustCreate(t, c, "one", nil)
	mustCreate(t, c, "two", nil)
	mustPut(t, c, "two", "o", bytes.Repeat([]byte{1}, 1500), nil)
	ai, err := c.AccountInfo(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 2, ai.ContainerCount)
	assert.EqualValues(t, 1500, ai.BytesUsed)
	assert.EqualValues(t, 1<<20, ai.Quota)
	assert.False(t, ai.LastModified.IsZero())
}

func TestContainerQuotaIsTyped(t *testing.T) {
	_, c := startCloudClient(t, sandbox.Config{})
	mustCreate(t, c, "small", &ContainerOptions{Quota: quota(100)})
	mustPut(t, c, "small", "fits", make([]byte, 100), nil)
	_, err := c.PutObject(context.Background(), "small", "too-big", make([]byte, 1), nil)
	require.Error(t, err)
	assert.True(t, IsQuota(err), "%v", err)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rest.StatusOf(err))
}
