package astakos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// countingDoer counts and records the requests that reach the network.
type countingDoer struct {
	next  rest.Doer
	n     atomic.Int64
	mu    sync.Mutex
	paths []string
	// lastBody/lastType are the last request's body and Content-Type.
	lastBody []byte
	lastType string
}

func (d *countingDoer) Do(r *http.Request) (*http.Response, error) {
	d.n.Add(1)
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	d.mu.Lock()
	d.paths = append(d.paths, r.Method+" "+r.URL.Path)
	d.lastBody, d.lastType = body, r.Header.Get("Content-Type")
	d.mu.Unlock()
	return d.next.Do(r)
}

func newCounting() *countingDoer { return &countingDoer{next: &http.Client{Timeout: 10 * time.Second}} }

func TestAuthenticate(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	d := newCounting()
	c := New(cloud.AuthURL, sandboxtest.Alice.Token, d)

	id, err := c.Authenticate(context.Background())
	require.NoError(t, err)
	assert.Equal(t, sandboxtest.Alice.UUID, id.UserUUID)
	assert.Equal(t, sandboxtest.Alice.Name, id.UserName)
	assert.Equal(t, sandboxtest.Alice.Token, id.Token)
	assert.Equal(t, sandboxtest.Alice.UUID, id.DefaultProject)
	assert.Contains(t, id.Projects, sandboxtest.Alice.UUID)
	assert.True(t, id.Expires.After(time.Now()), "expiry %v", id.Expires)

	types := map[string]Service{}
	for _, s := range id.Catalog {
		types[s.Type] = s
	}
	require.Contains(t, types, "object-store")
	require.Contains(t, types, "image")
	require.Contains(t, types, "account")
	img := types["image"]
	assert.Equal(t, "cyclades_plankton", img.Name)
	require.Len(t, img.Endpoints, 1)
	assert.Equal(t, "v1.0", img.Endpoints[0].VersionID)
	assert.Equal(t, cloud.ImageURL(), img.Endpoints[0].PublicURL)
	assert.Equal(t, "default", img.Endpoints[0].Region)
	assert.Equal(t, "False", img.Endpoints[0].Extra["SNF:exposeVersion"])
	assert.NotEmpty(t, img.Endpoints[0].Extra["SNF:uiURL"])

	// The request is exactly astakosclient's.
	assert.Equal(t, []string{"POST /identity/v2.0/tokens"}, d.paths)
	assert.Equal(t, `{"auth": {"token": {"id": "alice-token"}}}`, string(d.lastBody))
	assert.Equal(t, "application/json", d.lastType)

	// Cached: no second request.
	id2, err := c.Authenticate(context.Background())
	require.NoError(t, err)
	assert.Same(t, id, id2)
	assert.EqualValues(t, 1, d.n.Load())

	c.Invalidate()
	_, err = c.Authenticate(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 2, d.n.Load())
}

func TestAuthURLVersion(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	for _, u := range []string{cloud.URL + "/identity", cloud.URL + "/identity/", cloud.AuthURL, cloud.AuthURL + "/"} {
		t.Run(u, func(t *testing.T) {
			c := New(u, sandboxtest.Bob.Token, nil)
			assert.Equal(t, cloud.AuthURL, c.AuthURL())
			id, err := c.Authenticate(context.Background())
			require.NoError(t, err)
			assert.Equal(t, sandboxtest.Bob.UUID, id.UserUUID)
		})
	}
}

func TestAuthenticateConcurrentSharesOneRequest(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	d := newCounting()
	c := New(cloud.AuthURL, sandboxtest.Alice.Token, d)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := c.EndpointURL(context.Background(), "object-store")
			if err == nil && u != cloud.PithosURL() {
				err = errors.New("wrong url " + u)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, d.n.Load())
}

func TestAuthenticateHonoursContext(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	c := New(cloud.AuthURL, sandboxtest.Alice.Token, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Authenticate(ctx)
	require.ErrorIs(t, err, context.Canceled)
	// A failed attempt caches nothing.
	id, err := c.Authenticate(context.Background())
	require.NoError(t, err)
	assert.Equal(t, sandboxtest.Alice.UUID, id.UserUUID)
}

func TestAuthenticateUnauthorizedNotRetried(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	cases := []struct {
		name, token, reason string
		revoke              bool
	}{
		{"unknown token", "not-a-token-s3cr3t", "Invalid token", false},
		{"revoked token", sandboxtest.Bob.Token, "Authentication expired", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.revoke {
				cloud.RevokeToken(tc.token)
			}
			d := newCounting()
			retrying := rest.NewRetrying(d, rest.RetryPolicy{Attempts: 5, Base: time.Millisecond, Max: time.Millisecond})
			c := New(cloud.AuthURL, tc.token, retrying)
			_, err := c.Authenticate(context.Background())
			require.Error(t, err)
			assert.EqualValues(t, 1, d.n.Load(), "a 401 must not be retried")
			assert.ErrorIs(t, err, ErrUnauthorized)
			var ue *UnauthorizedError
			require.ErrorAs(t, err, &ue)
			var re *rest.Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, http.StatusUnauthorized, re.Status)
			assert.True(t, rest.IsStatus(err, 401))
			assert.False(t, rest.IsTemporary(err))
			assert.Contains(t, err.Error(), "invalid or expired")
			assert.Contains(t, err.Error(), tc.reason)
			assert.NotContains(t, err.Error(), tc.token)
			_, err = c.EndpointURL(context.Background(), "image")
			assert.ErrorIs(t, err, ErrUnauthorized)
		})
	}
}

func TestAuthenticateUnreachable(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	u := hs.URL + "/identity/v2.0"
	hs.Close()
	c := New(u, "tok", &http.Client{Timeout: 5 * time.Second})
	_, err := c.Authenticate(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot reach identity service at "+u)
	var ne *rest.NetError
	assert.ErrorAs(t, err, &ne)
	assert.True(t, rest.IsTemporary(err))
	assert.NotErrorIs(t, err, ErrUnauthorized)
}

func TestAuthenticateServerError(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	// A wrong path under the identity prefix is a 400 fault, passed through typed.
	c := New(cloud.URL+"/identity/v2.0/nope/v2.0", "tok", nil)
	_, err := c.Authenticate(context.Background())
	require.Error(t, err)
	assert.Equal(t, http.StatusBadRequest, rest.StatusOf(err))
	assert.NotErrorIs(t, err, ErrUnauthorized)
}

func TestEndpointURL(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	c := New(cloud.AuthURL, sandboxtest.Alice.Token, nil)
	cases := []struct {
		typ, want string
	}{
		{"object-store", cloud.PithosURL()},
		{"OBJECT-STORE", cloud.PithosURL()},
		{"image", cloud.ImageURL() + "/v1.0"},
		{"Image", cloud.ImageURL() + "/v1.0"},
		{"account", cloud.AccountURL()},
		{"identity", cloud.AuthURL},
	}
	for _, tc := range cases {
		got, err := c.EndpointURL(context.Background(), tc.typ)
		require.NoError(t, err, tc.typ)
		assert.Equal(t, tc.want, got, tc.typ)
	}
	_, err := c.EndpointURL(context.Background(), "compute")
	assert.ErrorIs(t, err, ErrCatalog)
	var ce *CatalogError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "compute", ce.ServiceType)
	assert.Contains(t, err.Error(), "not in the catalog")
}

func TestIdentityEndpointURLCatalogRules(t *testing.T) {
	ep := func(u string) Endpoint { return Endpoint{PublicURL: u} }
	id := &Identity{Catalog: []Service{
		{Type: "image", Endpoints: []Endpoint{ep("https://h/image/")}},
		{Type: "image", Endpoints: []Endpoint{ep("https://other/image")}},
		{Type: "object-store", Endpoints: []Endpoint{ep("https://h/object-store")}},
		{Type: "compute", Endpoints: []Endpoint{ep("https://h/compute/v2.0"), ep("https://h2/compute/v2.0")}},
		{Type: "volume"},
		{Type: "network", Endpoints: []Endpoint{ep("")}},
		{Type: "account", Endpoints: []Endpoint{ep("https://h/account/v1.0")}},
		{Type: "versioned-image", Endpoints: []Endpoint{ep("https://h/image/v1.0")}},
	}}
	cases := []struct {
		typ, want, errPart string
	}{
		{"image", "https://h/image/v1.0", ""}, // first match wins, version appended
		{"object-store", "https://h/object-store/v1", ""},
		{"account", "https://h/account/v1.0", ""},
		{"versioned-image", "https://h/image/v1.0", ""},
		{"compute", "", "2 endpoints"},
		{"volume", "", "0 endpoints"},
		{"network", "", "without a publicURL"},
		{"missing", "", "not in the catalog"},
	}
	for _, tc := range cases {
		got, err := id.EndpointURL(tc.typ)
		if tc.errPart != "" {
			require.ErrorIs(t, err, ErrCatalog, tc.typ)
			assert.Contains(t, err.Error(), tc.errPart)
			continue
		}
		require.NoError(t, err, tc.typ)
		assert.Equal(t, tc.want, got)
	}
}

func TestWithVersion(t *testing.T) {
	cases := map[string]string{
		"https://h/identity":          "https://h/identity/v2.0",
		"https://h/identity/":         "https://h/identity/v2.0",
		"https://h/identity/v2.0":     "https://h/identity/v2.0",
		"https://h/identity/v3":       "https://h/identity/v3",
		"https://h/identity/v2.0/":    "https://h/identity/v2.0",
		"https://h/identity/version2": "https://h/identity/version2/v2.0",
	}
	for in, want := range cases {
		assert.Equal(t, want, withVersion(in, "v2.0"), in)
	}
}

func TestQuotas(t *testing.T) {
	const limit = 1 << 20
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024, Quota: limit})
	c := New(cloud.AuthURL, sandboxtest.Alice.Token, nil)
	ctx := context.Background()

	free, err := c.DiskspaceFree(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, limit, free)

	// Store 3000 bytes and watch the usage follow.
	putObject(t, cloud, sandboxtest.Alice, "c", "o", bytes.Repeat([]byte("x"), 3000))
	qs, err := c.Quotas(ctx)
	require.NoError(t, err)
	q, ok := qs[sandboxtest.Alice.UUID][Diskspace]
	require.True(t, ok, "%v", qs)
	assert.EqualValues(t, 3000, q.Usage)
	assert.EqualValues(t, limit, q.Limit)
	assert.False(t, q.Unlimited())
	free, err = c.DiskspaceFree(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, limit-3000, free)
}

func TestQuotasUnlimited(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	c := New(cloud.AuthURL, sandboxtest.Bob.Token, nil)
	q, err := c.Diskspace(context.Background())
	require.NoError(t, err)
	assert.True(t, q.Unlimited())
	free, err := c.DiskspaceFree(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, int64(math.MaxInt64), free)
}

func TestQuotasAfterRevocation(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	c := New(cloud.AuthURL, sandboxtest.Alice.Token, nil)
	_, err := c.Authenticate(context.Background())
	require.NoError(t, err)
	cloud.RevokeToken(sandboxtest.Alice.Token)
	_, err = c.Quotas(context.Background())
	require.ErrorIs(t, err, ErrUnauthorized)
	assert.Contains(t, err.Error(), cloud.AccountURL())
	assert.NotContains(t, err.Error(), sandboxtest.Alice.Token)
	_, err = c.UserNames(context.Background(), []string{sandboxtest.Bob.UUID})
	require.ErrorIs(t, err, ErrUnauthorized)
}

func TestQuotaFree(t *testing.T) {
	cases := []struct {
		name string
		q    Quota
		want int64
	}{
		{"unlimited", Quota{Usage: 5, Limit: Unlimited, ProjectLimit: Unlimited}, Unlimited},
		{"user bound", Quota{Usage: 30, Pending: 10, Limit: 100, ProjectLimit: Unlimited}, 60},
		{"project bound", Quota{Usage: 30, Limit: 100, ProjectUsage: 950, ProjectLimit: 1000}, 50},
		{"project bound, user unlimited", Quota{Limit: Unlimited, ProjectUsage: 10, ProjectPending: 5, ProjectLimit: 100}, 85},
		{"over", Quota{Usage: 130, Limit: 100, ProjectLimit: Unlimited}, 0},
		{"zero limit", Quota{Limit: 0, ProjectLimit: Unlimited}, 0},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, tc.q.Free(), tc.name)
	}
}

func TestNumber(t *testing.T) {
	cases := map[json.Number]int64{
		"":                     0,
		"42":                   42,
		"9223372036854775807":  Unlimited,
		"18446744073709551615": Unlimited, // beyond int64: still unlimited
		"1e30":                 Unlimited,
		"12.0":                 12,
		"junk":                 0,
	}
	for in, want := range cases {
		assert.Equal(t, want, number(in), string(in))
	}
}

func TestUserNames(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	d := newCounting()
	c := New(cloud.AuthURL, sandboxtest.Alice.Token, d)
	names, err := c.UserNames(context.Background(), []string{sandboxtest.Alice.UUID, sandboxtest.Bob.UUID, "00000000-dead-beef-0000-000000000000"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{sandboxtest.Alice.UUID: "alice", sandboxtest.Bob.UUID: "bob"}, names)
	assert.Equal(t, "POST /account/v1.0/user_catalogs", d.paths[len(d.paths)-1])

	n := d.n.Load()
	names, err = c.UserNames(context.Background(), nil)
	require.NoError(t, err)
	assert.Empty(t, names)
	assert.Equal(t, n, d.n.Load(), "no request for no uuids")
}

func TestTokenBody(t *testing.T) {
	cases := map[string]string{
		"abc":       `{"auth": {"token": {"id": "abc"}}}`,
		`a"b\c`:     `{"auth": {"token": {"id": "a\"b\\c"}}}`,
		"<&>":       `{"auth": {"token": {"id": "<&>"}}}`,
		"tab\there": `{"auth": {"token": {"id": "tab\there"}}}`,
	}
	for in, want := range cases {
		got, err := tokenBody(in)
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
	}
}

func FuzzTokenBody(f *testing.F) {
	for _, s := range []string{"", "abc", `"`, "\\", "\x00", "ü", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		body, err := tokenBody(token)
		require.NoError(t, err)
		var doc struct {
			Auth struct {
				Token struct {
					ID *string `json:"id"`
				} `json:"token"`
			} `json:"auth"`
		}
		require.NoError(t, json.Unmarshal(body, &doc), "%q", body)
		require.NotNil(t, doc.Auth.Token.ID)
		if strings.ToValidUTF8(token, "\uFFFD") == token {
			require.Equal(t, token, *doc.Auth.Token.ID)
		}
	})
}

// putObject stores an object through the Pithos API with a plain request,
// so these tests depend on no other client.
func putObject(t *testing.T, cloud *sandboxtest.Cloud, u sandbox.User, container, object string, data []byte) {
	t.Helper()
	rc := rest.New(cloud.PithosURL(), u.Token, nil)
	_, err := rc.DoDiscard(context.Background(), &rest.Request{Method: http.MethodPut, Path: "/" + u.UUID + "/" + container, Success: []int{201, 202}})
	require.NoError(t, err)
	h := http.Header{}
	h.Set("Content-Type", "application/octet-stream")
	_, err = rc.DoDiscard(context.Background(), &rest.Request{
		Method: http.MethodPut, Path: "/" + u.UUID + "/" + container + "/" + object, Header: h,
		Body: bytes.NewReader(data), ContentLength: int64(len(data)), Success: []int{201},
	})
	require.NoError(t, err)
}
