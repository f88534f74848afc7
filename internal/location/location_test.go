package location

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Location
		err  string
	}{
		{in: "pithos:debian_base3.diskdump", want: Location{Container: "pithos", Object: "debian_base3.diskdump"}},
		{in: "/pithos/dir/debian.diskdump", want: Location{Container: "pithos", Object: "dir/debian.diskdump"}},
		{in: "pithos://s0m3-u53r-1d/pithos/debian_base3.diskdump", want: Location{Account: "s0m3-u53r-1d", Container: "pithos", Object: "debian_base3.diskdump"}},
		{in: "pithos://4321-4321/%E2%98%82/foo", want: Location{Account: "4321-4321", Container: "☂", Object: "foo"}},
		{in: "pithos://u/images/my%20img%23%25%3F.diskdump", want: Location{Account: "u", Container: "images", Object: "my img#%?.diskdump"}},
		{in: "images:50%.diskdump", want: Location{Container: "images", Object: "50%.diskdump"}},
		{in: "pithos://acct/cont", err: "want pithos://"},
		{in: "pitho://a/b/c", err: `unknown scheme "pitho"`},
		{in: "pithos:///cont/obj", err: "empty account"},
		{in: "/cont", err: "want /<container>/<object>"},
		{in: "cont:", err: "empty object name"},
		{in: ":obj", err: "empty container"},
		{in: "/c/a//b", err: "empty path segment"},
		{in: "/c/a/../b", err: `".." segment`},
		{in: "/c/" + strings.Repeat("x", 1025), err: "limit is 1024"},
		{in: "/c/\xff", err: "not valid UTF-8"},
		{in: "pithos://u/c/%zz", err: "bad percent-encoding"},
		{in: "noseparator", err: "want container:path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.err != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrInvalid)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestString(t *testing.T) {
	l := Location{Account: "uuid-1", Container: "images", Object: "dir/my img ü#?%.diskdump"}
	assert.Equal(t, "pithos://uuid-1/images/dir/my%20img%20%C3%BC%23%3F%25.diskdump", l.String())
	back, err := Parse(l.String())
	require.NoError(t, err)
	assert.Equal(t, l, back)
	assert.Equal(t, "/images/dir/my img ü#?%.diskdump", l.Short())
}

func TestJoinAndWithAccount(t *testing.T) {
	l := Join("images", "/prefix/", "sub/a.diskdump")
	assert.Equal(t, Location{Container: "images", Object: "prefix/sub/a.diskdump"}, l)
	assert.Equal(t, "u", l.WithAccount("u").Account)
	assert.Equal(t, "keep", Location{Account: "keep"}.WithAccount("u").Account)
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"c:o", "/c/o/p", "pithos://a/c/o", "pithos://a/c/%20x", "/c/../x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		require.NoError(t, l.Validate())
		if l.Account == "" {
			l.Account = "acct"
		}
		back, err := Parse(l.String())
		require.NoError(t, err, "rendered %q", l.String())
		assert.Equal(t, l, back)
	})
}
