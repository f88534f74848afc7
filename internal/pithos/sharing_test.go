package pithos

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

func TestSetSharing(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	rec := &headerRecorder{}
	alice := clientAs(cloud, sandboxtest.Alice, func(d rest.Doer) rest.Doer { rec.next = d; return rec })
	bob := clientAs(cloud, sandboxtest.Bob, nil)
	bobOnAlice := bob.ForAccount(sandboxtest.Alice.UUID)
	ctx := context.Background()
	mustCreate(t, alice, "c", nil)
	mustPut(t, alice, "c", "shared img", []byte("payload"), nil)
	mustPut(t, alice, "c", "private", []byte("secret"), nil)
	before, err := alice.ObjectInfo(ctx, "c", "shared img", nil)
	require.NoError(t, err)

	// Not shared: Bob is refused with 403, not 404.
	_, err = bobOnAlice.ObjectInfo(ctx, "c", "shared img", nil)
	assert.True(t, IsForbidden(err), "%v", err)

	require.NoError(t, alice.SetSharing(ctx, "c", "shared img", []string{sandboxtest.Bob.UUID, "Carol"}, []string{"dave"}))
	req := rec.last()
	assert.Equal(t, http.MethodPost, req.Method)
	assert.Equal(t, "update", req.URL.RawQuery)
	assert.Equal(t, "read="+sandboxtest.Bob.UUID+",Carol;write=dave", req.Header.Get("X-Object-Sharing"))

	info, err := alice.ObjectInfo(ctx, "c", "shared img", nil)
	require.NoError(t, err)
	require.NotNil(t, info.Sharing)
	assert.ElementsMatch(t, []string{sandboxtest.Bob.UUID, "carol"}, info.Sharing.Read, "the server lowercases members")
	assert.Equal(t, []string{"dave"}, info.Sharing.Write)
	assert.Equal(t, before.UUID, info.UUID)
	assert.Equal(t, before.Version, info.Version, "permissions are not a new version")

	// Bob can now read it, and is told how.
	binfo, err := bobOnAlice.ObjectInfo(ctx, "c", "shared img", nil)
	require.NoError(t, err)
	assert.Equal(t, "read", binfo.AllowedTo)
	got, _ := readObject(t, bobOnAlice, "c", "shared img", nil)
	assert.Equal(t, "payload", string(got))
	_, _, err = bobOnAlice.GetObject(ctx, "c", "private", nil)
	assert.True(t, IsForbidden(err), "%v", err)

	// Only the owner may change permissions.
	err = bobOnAlice.SetSharing(ctx, "c", "shared img", []string{"*"}, nil)
	assert.True(t, IsForbidden(err), "%v", err)

	// Listing shows the sharing too.
	l, err := alice.ListObjects(ctx, "c", &ListOptions{Shared: true})
	require.NoError(t, err)
	require.Len(t, l.Objects, 1)
	assert.Equal(t, "shared img", l.Objects[0].Name)
	require.NotNil(t, l.Objects[0].Sharing)
	assert.Equal(t, []string{"dave"}, l.Objects[0].Sharing.Write)

	// Empty lists clear the sharing.
	require.NoError(t, alice.SetSharing(ctx, "c", "shared img", nil, nil))
	_, present := rec.last().Header["X-Object-Sharing"]
	assert.True(t, present, "an empty X-Object-Sharing is sent")
	info, err = alice.ObjectInfo(ctx, "c", "shared img", nil)
	require.NoError(t, err)
	assert.Nil(t, info.Sharing)
	_, err = bobOnAlice.ObjectInfo(ctx, "c", "shared img", nil)
	assert.True(t, IsForbidden(err), "%v", err)

	// Members that would change meaning on the wire are refused locally.
	for _, bad := range [][]string{{"a,b"}, {"a;write=b"}, {""}, {"  "}, {"a\nb"}} {
		err := alice.SetSharing(ctx, "c", "shared img", bad, nil)
		assert.Error(t, err, "%q", bad)
		assert.Zero(t, rest.StatusOf(err), "refused before any request")
	}
	assert.True(t, IsNotFound(alice.SetSharing(ctx, "c", "missing", []string{"x"}, nil)))
}

func TestSharingOnPutAndCopy(t *testing.T) {
	cloud, alice := startCloudClient(t, sandbox.Config{})
	bob := clientAs(cloud, sandboxtest.Bob, nil).ForAccount(sandboxtest.Alice.UUID)
	mustCreate(t, alice, "c", nil)
	pub := true
	mustPut(t, alice, "c", "o", []byte("x"), &PutOptions{Sharing: &Sharing{Read: []string{"*"}}, Public: &pub})
	info, err := alice.ObjectInfo(context.Background(), "c", "o", nil)
	require.NoError(t, err)
	require.NotNil(t, info.Sharing)
	assert.Equal(t, []string{"*"}, info.Sharing.Read)
	assert.NotEmpty(t, info.PublicURL)
	got, _ := readObject(t, bob, "c", "o", nil)
	assert.Equal(t, "x", string(got))

	_, err = alice.CopyObject(context.Background(), "c", "o", "c", "o2", &CopyOptions{Sharing: &Sharing{Write: []string{sandboxtest.Bob.UUID}}})
	require.NoError(t, err)
	info, err = alice.ObjectInfo(context.Background(), "c", "o2", nil)
	require.NoError(t, err)
	require.NotNil(t, info.Sharing)
	assert.Equal(t, []string{sandboxtest.Bob.UUID}, info.Sharing.Write)

	_, err = alice.PutObject(context.Background(), "c", "o3", nil, &PutOptions{Sharing: &Sharing{Read: []string{"a,b"}}})
	assert.ErrorContains(t, err, "contains ','")
}

func TestSetPublic(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	rec := &headerRecorder{}
	c := clientAs(cloud, sandboxtest.Alice, func(d rest.Doer) rest.Doer { rec.next = d; return rec })
	ctx := context.Background()
	mustCreate(t, c, "c", nil)
	mustPut(t, c, "c", "pub lic ü", []byte("for everyone"), &PutOptions{Meta: map[string]string{"k": "v"}})

	u, err := c.SetPublic(ctx, "c", "pub lic ü", true)
	require.NoError(t, err)
	require.NotEmpty(t, u)
	var post *http.Request
	for _, r := range rec.reqs {
		if r.Method == http.MethodPost {
			post = r
		}
	}
	require.NotNil(t, post)
	assert.Equal(t, "True", post.Header.Get("X-Object-Public"))
	assert.Equal(t, "update", post.URL.RawQuery)

	// Anyone can fetch it, without a token.
	resp, err := http.Get(u)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "for everyone", string(body))

	info, err := c.ObjectInfo(ctx, "c", "pub lic ü", nil)
	require.NoError(t, err)
	assert.Equal(t, u, info.PublicURL)
	assert.Equal(t, "v", info.Meta["k"], "publishing keeps the metadata")

	u2, err := c.SetPublic(ctx, "c", "pub lic ü", false)
	require.NoError(t, err)
	assert.Empty(t, u2)
	assert.Equal(t, "False", rec.last().Header.Get("X-Object-Public"))
	info, err = c.ObjectInfo(ctx, "c", "pub lic ü", nil)
	require.NoError(t, err)
	assert.Empty(t, info.PublicURL)
	resp, err = http.Get(u)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestSharingStringAndParse(t *testing.T) {
	cases := []struct {
		in   string
		want Sharing
		str  string
	}{
		{"", Sharing{}, ""},
		{"read=a,b; write=c", Sharing{Read: []string{"a", "b"}, Write: []string{"c"}}, "read=a,b;write=c"},
		{"read=a,b;write=c", Sharing{Read: []string{"a", "b"}, Write: []string{"c"}}, "read=a,b;write=c"},
		{"write=c", Sharing{Write: []string{"c"}}, "write=c"},
		{"read=*", Sharing{Read: []string{"*"}}, "read=*"},
		{" READ = a , ,b ;", Sharing{Read: []string{"a", "b"}}, "read=a,b"},
		{"read=acct:group", Sharing{Read: []string{"acct:group"}}, "read=acct:group"},
		{"write=x;read=y", Sharing{Read: []string{"y"}, Write: []string{"x"}}, "read=y;write=x"},
	}
	for _, tc := range cases {
		got, err := ParseSharing(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		assert.Equal(t, tc.str, got.String(), tc.in)
	}
	for _, bad := range []string{"read", "owner=a", "read=a;bogus"} {
		_, err := ParseSharing(bad)
		assert.Error(t, err, bad)
	}
}

func FuzzParseSharing(f *testing.F) {
	for _, s := range []string{"", "read=a,b; write=c", "write=*", "read=a=b", ";;", "read=,", "x", "READ=ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParseSharing(v)
		if err != nil {
			return
		}
		for _, m := range append(append([]string(nil), s.Read...), s.Write...) {
			if m == "" || m != trimSpaceASCII(m) {
				t.Fatalf("%q: member %q is blank or untrimmed", v, m)
			}
		}
		// What we render parses back to the same permissions.
		again, err := ParseSharing(s.String())
		if err != nil {
			t.Fatalf("%q → %q: %v", v, s.String(), err)
		}
		if again.String() != s.String() || len(again.Read) != len(s.Read) || len(again.Write) != len(s.Write) {
			t.Fatalf("%q: %#v → %q → %#v", v, s, s.String(), again)
		}
	})
}

func trimSpaceASCII(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' || s[0] == '\v' || s[0] == '\f') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\n' || s[len(s)-1] == '\r' || s[len(s)-1] == '\v' || s[len(s)-1] == '\f') {
		s = s[:len(s)-1]
	}
	return s
}
