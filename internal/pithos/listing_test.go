package pithos

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

func names(l *Listing) []string {
	var out []string
	for _, o := range l.Objects {
		out = append(out, o.Name)
	}
	return out
}

func TestListObjects(t *testing.T) {
	_, c := startCloudClient(t, sandbox.Config{})
	ctx := context.Background()
	mustCreate(t, c, "c", nil)
	for _, n := range []string{"a/1", "a/2", "a/deep/3", "b/1", "c", "d", "e ü"} {
		mustPut(t, c, "c", n, []byte(n), &PutOptions{ContentType: "text/plain"})
	}
	cases := []struct {
		name    string
		opts    *ListOptions
		objects []string
		subdirs []string
	}{
		{"all", nil, []string{"a/1", "a/2", "a/deep/3", "b/1", "c", "d", "e ü"}, nil},
		{"delimiter", &ListOptions{Delimiter: "/"}, []string{"c", "d", "e ü"}, []string{"a/", "b/"}},
		{"prefix", &ListOptions{Prefix: "a/"}, []string{"a/1", "a/2", "a/deep/3"}, nil},
		{"prefix and delimiter", &ListOptions{Prefix: "a/", Delimiter: "/"}, []string{"a/1", "a/2"}, []string{"a/deep/"}},
		{"path", &ListOptions{Path: "a"}, []string{"a/1", "a/2"}, nil},
		{"marker", &ListOptions{Marker: "b/1"}, []string{"c", "d", "e ü"}, nil},
		{"limit", &ListOptions{Limit: 2}, []string{"a/1", "a/2"}, nil},
		{"marker and limit", &ListOptions{Marker: "a/2", Limit: 3}, []string{"a/deep/3", "b/1", "c"}, nil},
		{"limit counts subdirs", &ListOptions{Delimiter: "/", Limit: 3}, []string{"c"}, []string{"a/", "b/"}},
		{"nothing", &ListOptions{Prefix: "zzz"}, nil, nil},
	}
	for _, paged := range []int{0, 1, 2, 3} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/page%d", tc.name, paged), func(t *testing.T) {
				c.listPage = paged
				l, err := c.ListObjects(ctx, "c", tc.opts)
				require.NoError(t, err)
				assert.Equal(t, tc.objects, names(l))
				assert.Equal(t, tc.subdirs, l.Subdirs)
			})
		}
	}
	c.listPage = 0

	l, err := c.ListObjects(ctx, "c", &ListOptions{Prefix: "e"})
	require.NoError(t, err)
	require.Len(t, l.Objects, 1)
	info, err := c.ObjectInfo(ctx, "c", "e ü", nil)
	require.NoError(t, err)
	e := l.Objects[0]
	assert.Equal(t, "e ü", e.Name)
	assert.EqualValues(t, len("e ü"), e.Bytes)
	assert.Equal(t, "text/plain", e.ContentType)
	assert.Equal(t, info.Hash, e.Hash)
	assert.Equal(t, info.UUID, e.UUID)
	assert.Equal(t, info.Version, e.Version)
	assert.Equal(t, sandboxtest.Alice.UUID, e.ModifiedBy)
	assert.WithinDuration(t, time.Now(), e.VersionTimestamp, time.Minute)
	assert.WithinDuration(t, time.Now(), e.LastModified, time.Minute)
	assert.Equal(t, info.VersionTimestamp.Unix(), e.VersionTimestamp.Unix())
	assert.Nil(t, e.Sharing)

	_, err = c.ListObjects(ctx, "missing", nil)
	assert.True(t, IsNotFound(err), "%v", err)
	_, err = c.ListObjects(ctx, "c", &ListOptions{Limit: -1})
	assert.Error(t, err)
}

// limitRecorder remembers the limit and marker of each listing request.
type limitRecorder struct {
	next rest.Doer
	mu   sync.Mutex
	qs   []url.Values
}

func (r *limitRecorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.qs = append(r.qs, req.URL.Query())
	r.mu.Unlock()
	return r.next.Do(req)
}

func TestListObjectsPagesWithMarkers(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	rec := &limitRecorder{}
	c := clientAs(cloud, sandboxtest.Alice, func(d rest.Doer) rest.Doer { rec.next = d; return rec })
	mustCreate(t, c, "c", nil)
	var want []string
	for i := range 7 {
		n := fmt.Sprintf("obj%02d", i)
		want = append(want, n)
		mustPut(t, c, "c", n, nil, nil)
	}
	rec.qs = nil
	c.listPage = 3
	l, err := c.ListObjects(context.Background(), "c", nil)
	require.NoError(t, err)
	assert.Equal(t, want, names(l))
	require.Len(t, rec.qs, 3)
	assert.Equal(t, "", rec.qs[0].Get("marker"))
	assert.Equal(t, "obj02", rec.qs[1].Get("marker"))
	assert.Equal(t, "obj05", rec.qs[2].Get("marker"))
	for _, q := range rec.qs {
		assert.Equal(t, "3", q.Get("limit"))
		assert.Equal(t, "json", q.Get("format"))
	}

	// Without a lowered page size, one request asks for the server's cap.
	rec.qs = nil
	c.listPage = 0
	_, err = c.ListObjects(context.Background(), "c", nil)
	require.NoError(t, err)
	require.Len(t, rec.qs, 1)
	assert.Equal(t, "10000", rec.qs[0].Get("limit"))
}

func TestListEmptyContainer(t *testing.T) {
	_, c := startCloudClient(t, sandbox.Config{})
	mustCreate(t, c, "empty", nil)
	l, err := c.ListObjects(context.Background(), "empty", &ListOptions{Delimiter: "/"})
	require.NoError(t, err)
	assert.Empty(t, l.Objects)
	assert.Empty(t, l.Subdirs)
}
