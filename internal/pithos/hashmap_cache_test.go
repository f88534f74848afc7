package pithos

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func digests(n int, seed byte) []Digest {
	out := make([]Digest, n)
	for i := range out {
		out[i][0], out[i][1], out[i][31] = seed, byte(i), byte(i>>8)
	}
	return out
}

func writeFile(t *testing.T, path string, data []byte) os.FileInfo {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o644))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi
}

func TestHashmapCacheRoundTrip(t *testing.T) {
	c, err := OpenHashmapCache(filepath.Join(t.TempDir(), "state", "hashmaps"))
	require.NoError(t, err)
	fi := writeFile(t, filepath.Join(t.TempDir(), "img"), make([]byte, 3*4096+1))

	_, ok := c.Lookup(fi, 4096, "sha256")
	assert.False(t, ok, "empty cache")

	want := digests(4, 7)
	require.NoError(t, c.Store(fi, 4096, "sha256", want))
	got, ok := c.Lookup(fi, 4096, "sha256")
	require.True(t, ok)
	assert.Equal(t, want, got)

	_, ok = c.Lookup(fi, 8192, "sha256")
	assert.False(t, ok, "another block size is another entry")
	_, ok = c.Lookup(fi, 4096, "sha512")
	assert.False(t, ok, "another algorithm is another entry")

	require.NoError(t, c.Forget(fi, 4096, "sha256"))
	_, ok = c.Lookup(fi, 4096, "sha256")
	assert.False(t, ok)
	require.NoError(t, c.Forget(fi, 4096, "sha256"), "forgetting twice is fine")
}

func TestHashmapCacheEmptyFile(t *testing.T) {
	c, err := OpenHashmapCache(t.TempDir())
	require.NoError(t, err)
	fi := writeFile(t, filepath.Join(t.TempDir(), "empty"), nil)
	require.NoError(t, c.Store(fi, 4096, "sha256", nil))
	got, ok := c.Lookup(fi, 4096, "sha256")
	require.True(t, ok)
	assert.Empty(t, got)
}

func TestHashmapCacheInvalidatedByChange(t *testing.T) {
	c, err := OpenHashmapCache(t.TempDir())
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "img")
	fi := writeFile(t, path, make([]byte, 4096))
	require.NoError(t, c.Store(fi, 4096, "sha256", digests(1, 1)))

	tests := []struct {
		name   string
		change func(t *testing.T)
	}{
		{"rewritten same size", func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, make([]byte, 4096), 0o644))
		}},
		{"mtime set back", func(t *testing.T) {
			// Touching back the old mtime still moves the ctime.
			time.Sleep(10 * time.Millisecond)
			require.NoError(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
		}},
		{"grown", func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, make([]byte, 4097), 0o644))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			time.Sleep(5 * time.Millisecond) // let the clock move past the filesystem's granularity
			tt.change(t)
			now, err := os.Stat(path)
			require.NoError(t, err)
			_, ok := c.Lookup(now, 4096, "sha256")
			assert.False(t, ok)
		})
	}
	// The original stat still finds it: the key is what was hashed.
	_, ok := c.Lookup(fi, 4096, "sha256")
	assert.True(t, ok)
}

func TestHashmapCacheCorruptEntryIsAMiss(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenHashmapCache(dir)
	require.NoError(t, err)
	fi := writeFile(t, filepath.Join(t.TempDir(), "img"), make([]byte, 2*4096))
	require.NoError(t, c.Store(fi, 4096, "sha256", digests(2, 3)))
	entries, err := filepath.Glob(filepath.Join(dir, "*.hashmap"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	data, err := os.ReadFile(entries[0])
	require.NoError(t, err)

	for name, bad := range map[string][]byte{
		"flipped bit": func() []byte { b := append([]byte(nil), data...); b[len(b)/2] ^= 1; return b }(),
		"truncated":   data[:len(data)-5],
		"empty":       nil,
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(entries[0], bad, 0o600))
			_, ok := c.Lookup(fi, 4096, "sha256")
			assert.False(t, ok)
		})
	}
}

func TestHashmapCacheWrongBlockCountIsAMiss(t *testing.T) {
	c, err := OpenHashmapCache(t.TempDir())
	require.NoError(t, err)
	fi := writeFile(t, filepath.Join(t.TempDir(), "img"), make([]byte, 2*4096))
	require.NoError(t, c.Store(fi, 4096, "sha256", digests(3, 3)))
	_, ok := c.Lookup(fi, 4096, "sha256")
	assert.False(t, ok)
}

func TestHashmapCacheNoIdentityNoCaching(t *testing.T) {
	c, err := OpenHashmapCache(t.TempDir())
	require.NoError(t, err)
	fi, _ := NewSizedFile(nil, 10).Stat()
	require.NoError(t, c.Store(fi, 4096, "sha256", digests(1, 1)))
	_, ok := c.Lookup(fi, 4096, "sha256")
	assert.False(t, ok)

	var nilCache *HashmapCache
	_, ok = nilCache.Lookup(fi, 4096, "sha256")
	assert.False(t, ok)
	assert.NoError(t, nilCache.Store(fi, 4096, "sha256", nil))
}

func TestHashmapCacheConcurrent(t *testing.T) {
	c, err := OpenHashmapCache(t.TempDir())
	require.NoError(t, err)
	dir := t.TempDir()
	var fis []os.FileInfo
	for i := range 4 {
		fis = append(fis, writeFile(t, filepath.Join(dir, string(rune('a'+i))), make([]byte, (i+1)*4096)))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 40 {
				i := (g + k) % len(fis)
				want := digests(i+1, byte(i))
				assert.NoError(t, c.Store(fis[i], 4096, "sha256", want))
				got, ok := c.Lookup(fis[i], 4096, "sha256")
				if assert.True(t, ok) {
					assert.Equal(t, want, got)
				}
			}
		}()
	}
	wg.Wait()
	left, err := filepath.Glob(filepath.Join(c.Dir(), ".tmp-*"))
	require.NoError(t, err)
	assert.Empty(t, left, "no temporary files left behind")
}

func TestOpenHashmapCacheErrors(t *testing.T) {
	_, err := OpenHashmapCache("")
	require.Error(t, err)
	f := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(f, nil, 0o644))
	_, err = OpenHashmapCache(filepath.Join(f, "sub"))
	require.Error(t, err)
}

func TestHashmapCacheIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hashmaps")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	c, err := OpenHashmapCache(dir)
	require.NoError(t, err)
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "an existing cache directory is made private")

	f := filepath.Join(t.TempDir(), "img")
	require.NoError(t, os.WriteFile(f, []byte("data"), 0o644))
	fi, err := os.Stat(f)
	require.NoError(t, err)
	require.NoError(t, c.Store(fi, 4096, "sha256", []Digest{{}}))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	est, err := os.Stat(filepath.Join(dir, entries[0].Name()))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), est.Mode().Perm())
}
