package pithos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/sandbox"
)

func TestVersions(t *testing.T) {
	_, c := startCloudClient(t, sandbox.Config{})
	ctx := context.Background()
	mustCreate(t, c, "auto", &ContainerOptions{Versioning: "auto"})
	mustCreate(t, c, "none", &ContainerOptions{Versioning: "none"})

	var puts []*WriteResult
	for i := 1; i <= 3; i++ {
		puts = append(puts, mustPut(t, c, "auto", "img ü", []byte(fmt.Sprintf("content v%d%s", i, make([]byte, i*400))), nil))
		mustPut(t, c, "none", "img", []byte(fmt.Sprintf("v%d", i)), nil)
	}
	cur, err := c.ObjectInfo(ctx, "auto", "img ü", nil)
	require.NoError(t, err)

	vs, err := c.Versions(ctx, "auto", "img ü")
	require.NoError(t, err)
	require.Len(t, vs, 3)
	for i, v := range vs {
		assert.Equal(t, puts[i].Version, v.Serial)
		assert.WithinDuration(t, time.Now(), v.Timestamp, time.Minute)
		if i > 0 {
			assert.Greater(t, v.Serial, vs[i-1].Serial)
			assert.False(t, v.Timestamp.Before(vs[i-1].Timestamp))
		}
	}
	assert.Equal(t, cur.Version, vs[2].Serial)
	assert.Equal(t, cur.VersionTimestamp.Unix(), vs[2].Timestamp.Unix())

	// An old version's info and data.
	old, err := c.ObjectInfo(ctx, "auto", "img ü", &InfoOptions{Version: vs[0].Serial})
	require.NoError(t, err)
	assert.Equal(t, vs[0].Serial, old.Version)
	assert.EqualValues(t, len("content v1")+400, old.Bytes)
	assert.Equal(t, cur.UUID, old.UUID, "overwrites keep the UUID")
	assert.NotEqual(t, cur.Hash, old.Hash)
	data, info := readObject(t, c, "auto", "img ü", &GetOptions{Version: vs[0].Serial})
	assert.Equal(t, "content v1", string(data[:10]))
	assert.Equal(t, vs[0].Serial, info.Version)
	part, _ := readObject(t, c, "auto", "img ü", &GetOptions{Version: vs[1].Serial, Offset: 8, Length: 2})
	assert.Equal(t, "v2", string(part))

	// A version that does not exist (or is another object's) is a 404.
	_, err = c.ObjectInfo(ctx, "auto", "img ü", &InfoOptions{Version: vs[2].Serial + 1000})
	assert.True(t, IsNotFound(err), "%v", err)

	// Versioning "none" keeps only the current version.
	vs, err = c.Versions(ctx, "none", "img")
	require.NoError(t, err)
	assert.Len(t, vs, 1)

	// The history outlives the object.
	require.NoError(t, c.DeleteObject(ctx, "auto", "img ü"))
	vs, err = c.Versions(ctx, "auto", "img ü")
	require.NoError(t, err)
	assert.Len(t, vs, 3)
	_, err = c.Versions(ctx, "missing", "x")
	assert.True(t, IsNotFound(err), "%v", err)
}

func TestParseUnixTimestamp(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"1322813441.565891", time.Unix(1322813441, 565891000), false},
		{"1322813441", time.Unix(1322813441, 0), false},
		{"1322813441.5", time.Unix(1322813441, 500000000), false},
		{"1322813441.1234567891234", time.Unix(1322813441, 123456789), false},
		{"0.000001", time.Unix(0, 1000), false},
		{"", time.Time{}, false},
		{"abc", time.Time{}, true},
		{"12.3x", time.Time{}, true},
		{"-5", time.Time{}, true},
		{".5", time.Time{}, true},
		{"1e9", time.Time{}, true},
	}
	for _, tc := range cases {
		got, err := parseUnixTimestamp(tc.in)
		if tc.bad {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.True(t, tc.want.Equal(got), "%s: %v", tc.in, got)
	}
}

func TestFlexTS(t *testing.T) {
	for in, want := range map[string]time.Time{
		`"1322813441.565891"`: time.Unix(1322813441, 565891000),
		`1322813441.5`:        time.Unix(1322813441, 500000000),
		`null`:                {},
	} {
		var f flexTS
		require.NoError(t, f.UnmarshalJSON([]byte(in)), in)
		assert.True(t, want.Equal(time.Time(f)), in)
	}
	var f flexTS
	assert.Error(t, f.UnmarshalJSON([]byte(`"soon"`)))
}

func FuzzParseUnixTimestamp(f *testing.F) {
	for _, s := range []string{"1322813441.565891", "0", "1.", "99999999999999999999", "1.0000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseUnixTimestamp(s)
		if err != nil {
			return
		}
		if got.IsZero() {
			return
		}
		// Re-rendering with nanoseconds parses back to the same instant.
		again, err := parseUnixTimestamp(fmt.Sprintf("%d.%09d", got.Unix(), got.Nanosecond()))
		if err != nil || !again.Equal(got) {
			t.Fatalf("%q → %v → %v (%v)", s, got, again, err)
		}
	})
}
