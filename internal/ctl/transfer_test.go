package ctl

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const tbs = 4096 // the test sandbox's block size

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// runWith is run with stdout and stderr taken for terminals or not.
func (e *env) runWith(terminal bool, args ...string) (int, string, string) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := Main(ctx, append([]string{"--config", e.cfgPath}, args...), Options{Stdout: &out, Stderr: &errOut,
		Getenv: func(string) string { return "" }, Terminal: func(io.Writer) bool { return terminal }})
	return code, out.String(), errOut.String()
}

func TestVerify(t *testing.T) {
	e := newCloudEnv(t)
	data := randomBytes(5*tbs + 123)
	p := filepath.Join(e.root, "sub", "v.diskdump")
	writeFile(t, p, string(data))
	writeFile(t, filepath.Join(e.root, "sub", "v.diskdump.meta"), `{"name": "Vee"}`)
	img := e.register("sub/v.diskdump")

	for _, arg := range []string{p, "Vee", img.ID, "/images/sub/v.diskdump", "pithos://" + e.state.UserUUID + "/images/sub/v.diskdump"} {
		var doc VerifyDoc
		e.runJSON(&doc, "verify", arg)
		assert.True(t, doc.Match, arg)
		assert.Equal(t, p, doc.Path, arg)
		assert.Equal(t, int64(6), doc.BlocksTotal)
		assert.Equal(t, doc.Hash, doc.LocalHash)
		assert.Equal(t, []BlockSpan{}, doc.Differing)
	}
	code, out, errOut := e.run("verify", p)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "MATCH")

	// Two blocks change locally: verify names them and fails.
	changed := append([]byte(nil), data...)
	changed[tbs+5] ^= 0xff
	changed[5*tbs+100] ^= 0xff
	writeFile(t, p, string(changed))
	code, out, errOut = e.run("verify", "Vee")
	assert.Equal(t, 1, code, errOut)
	assert.Contains(t, out, "DIFFERS: 2 of 6 block(s) differ")
	var doc VerifyDoc
	code, js, _ := e.run("verify", p, "--json")
	assert.Equal(t, 1, code)
	require.NoError(t, json.Unmarshal([]byte(js), &doc))
	assert.False(t, doc.Match)
	assert.Equal(t, []BlockSpan{{Index: 1, Offset: tbs, Length: tbs}, {Index: 5, Offset: 5 * tbs, Length: 123}}, doc.Differing)
	assert.NotEqual(t, doc.Hash, doc.LocalHash)

	// Shorter: the size differs too.
	writeFile(t, p, string(data[:2*tbs]))
	code, out, _ = e.run("verify", p)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "the local file has 8192 bytes, the object 20603")

	code, _, errOut = e.run("verify", "no-such-image")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `no image with id or name "no-such-image"`)
	code, _, _ = e.run("verify")
	assert.Equal(t, 2, code)
}

func TestDownload(t *testing.T) {
	e := newCloudEnv(t)
	data := append(randomBytes(3*tbs), make([]byte, 2*tbs)...) // two empty blocks
	data = append(data, randomBytes(77)...)
	writeFile(t, filepath.Join(e.root, "d.diskdump"), string(data))
	writeFile(t, filepath.Join(e.root, "d.diskdump.meta"), `{"name": "Dee"}`)
	img := e.register("d.diskdump")
	out := t.TempDir()

	dest := filepath.Join(out, "d.img")
	var doc DownloadDoc
	e.runJSON(&doc, "download", "Dee", dest)
	got, err := os.ReadFile(dest)
	require.NoError(t, err)
	assert.Equal(t, data, got)
	assert.Equal(t, img.ID, doc.ImageID)
	assert.Equal(t, img.Checksum, doc.Hash)
	assert.Equal(t, int64(6), doc.BlocksTotal)
	assert.Equal(t, int64(4), doc.BlocksFetched, "empty blocks need no request")
	assert.NoFileExists(t, dest+".part")

	// Up to date: nothing fetched. One block corrupted: one fetched.
	e.runJSON(&doc, "download", img.ID, dest)
	assert.Zero(t, doc.BlocksFetched)
	assert.Equal(t, int64(6), doc.BlocksReused)
	got[2*tbs+1] ^= 1
	require.NoError(t, os.WriteFile(dest, got, 0o644))
	e.runJSON(&doc, "download", "/images/d.diskdump", dest)
	assert.Equal(t, int64(1), doc.BlocksFetched)
	got, _ = os.ReadFile(dest)
	assert.Equal(t, data, got)

	// An interrupted download (a .part holding the first blocks) resumes,
	// into a directory under the object's name.
	require.NoError(t, os.WriteFile(filepath.Join(out, "d.diskdump.part"), data[:2*tbs], 0o644))
	e.runJSON(&doc, "download", "Dee", out)
	assert.Equal(t, filepath.Join(out, "d.diskdump"), doc.Dest)
	assert.Equal(t, int64(2), doc.BlocksReused)
	assert.Equal(t, int64(2), doc.BlocksFetched)
	got, _ = os.ReadFile(doc.Dest)
	assert.Equal(t, data, got)
	assert.NoFileExists(t, filepath.Join(out, "d.diskdump.part"))

	// A progress bar on a terminal, nothing on a pipe.
	code, stdout, stderr := e.runWith(true, "download", "Dee", filepath.Join(out, "tty.img"))
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "downloading")
	assert.Contains(t, stdout, "every block and the Merkle root checked")
	code, _, stderr = e.runWith(false, "download", "Dee", filepath.Join(out, "pipe.img"))
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, stderr)

	code, _, errOut := e.run("download", "/images/none.diskdump", filepath.Join(out, "none"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "404")
	assert.NoFileExists(t, filepath.Join(out, "none"))
}

func TestImagesFilterAndSort(t *testing.T) {
	e := newCloudEnv(t)
	for _, f := range []struct{ rel, name string }{{"a.diskdump", "Charlie"}, {"b.diskdump", "Alpha"}, {"c.diskdump", "Bravo"}} {
		writeFile(t, filepath.Join(e.root, f.rel), string(randomBytes(tbs*(len(f.name)-3))))
		writeFile(t, filepath.Join(e.root, f.rel+".meta"), `{"name": "`+f.name+`"}`)
		e.register(f.rel)
	}
	writeFile(t, filepath.Join(e.root, "new.diskdump"), "not registered yet")
	names := func(args ...string) []string {
		var rep ImagesDoc
		e.runJSON(&rep, append([]string{"images"}, args...)...)
		var out []string
		for _, im := range rep.Images {
			out = append(out, im.Name)
		}
		return out
	}
	assert.Equal(t, []string{"Charlie", "Alpha", "Bravo", "new.diskdump"}, names(), "the sweep's order")
	assert.Equal(t, []string{"Alpha", "Bravo", "Charlie", "new.diskdump"}, names("--sort", "name"))
	assert.Equal(t, []string{"new.diskdump", "Charlie", "Bravo", "Alpha"}, names("--sort", "name:desc"))
	assert.Equal(t, []string{"Charlie", "Alpha", "Bravo"}, names("--sort", "size:desc", "--filter", "status=AVAILABLE"),
		"ties keep the sweep's order; the unregistered image has no status")
	assert.Equal(t, []string{"Bravo"}, names("--filter", "name=Bravo"))
	assert.Equal(t, []string{"Charlie"}, names("--filter", "size_min=12000", "--filter", "disk_format=diskdump"))
	assert.Equal(t, []string{"new.diskdump"}, names("--filter", "size_max=100"), "an unregistered image by its file's size")

	code, out, _ := e.run("images", "--filter", "name=Alpha")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "1 image(s): 1 in-sync.")

	for _, bad := range [][]string{{"--filter", "colour=red"}, {"--filter", "size_min=big"}, {"--filter", "name"}, {"--sort", "colour"}, {"--sort", "name:up"}} {
		code, _, errOut := e.run(append([]string{"images"}, bad...)...)
		assert.Equal(t, 2, code, "%v: %s", bad, errOut)
	}
}
