package pithos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/rest"
)

// Digest is a raw block hash. Hashmaps are kept as digests (32 bytes a
// block, not an 80-byte string) and turned into hex only on the wire.
type Digest [sha256.Size]byte

// String is the lowercase hex form exchanged with the server.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// ParseDigest parses a hex block hash as the server sends it.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("pithos: invalid block hash %q: want %d hex digits", s, 2*len(d))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("pithos: invalid block hash %q: %w", s, err)
	}
	return d, nil
}

// DigestStrings converts digests to their hex forms.
func DigestStrings(ds []Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// mediaOctetStream is the only Content-Type under which the server stores a
// block POST body; it must be sent exactly, without parameters.
const mediaOctetStream = "application/octet-stream"

// PutHashmapOptions are the headers of a hashmap PUT.
type PutHashmapOptions struct {
	// ContentType is the object's MIME type (default application/octet-stream).
	// It is not the type of the JSON body: the server stores it as the object's.
	ContentType string
	// IfMatch / IfNoneMatch are sent as given ("*" for create-only).
	IfMatch, IfNoneMatch string
	// ETag is sent as is; the server ignores it on hashmap PUTs, kamaki sends
	// it on the final one.
	ETag string
	// Sharing, if not nil, is the X-Object-Sharing value ("read=a,b;write=c";
	// "" clears sharing).
	Sharing *string
	// Public, if not nil, publishes or unpublishes the object.
	Public *bool
	// Meta are X-Object-Meta-* entries. A PUT replaces the object's own
	// metadata; other domains (Plankton's) are kept by the server.
	Meta               map[string]string
	ContentEncoding    string
	ContentDisposition string
}

// PutHashmapResult is the answer to a hashmap PUT: either the object was
// created (201) or the server lacks some blocks (409).
type PutHashmapResult struct {
	Created bool
	// Missing lists the blocks the server lacks, de-duplicated, in the
	// server's order (first occurrence in the hashmap).
	Missing []Digest
	// ETag and Version come with a 201.
	ETag    string
	Version string
}

// PutHashmap creates object from a hashmap: PUT <object>?hashmap=True&format=json
// with {"hashes": […], "bytes": size}. The body is generated as it is sent.
func (c *Client) PutHashmap(ctx context.Context, container, object string, size int64, hashes []Digest, opts *PutHashmapOptions) (*PutHashmapResult, error) {
	if opts == nil {
		opts = &PutHashmapOptions{}
	}
	h := http.Header{}
	ct := opts.ContentType
	if ct == "" {
		ct = mediaOctetStream
	}
	h.Set("Content-Type", ct)
	setIf(h, "If-Match", opts.IfMatch)
	setIf(h, "If-None-Match", opts.IfNoneMatch)
	setIf(h, "ETag", opts.ETag)
	setIf(h, "Content-Encoding", opts.ContentEncoding)
	setIf(h, "Content-Disposition", opts.ContentDisposition)
	if opts.Sharing != nil {
		h.Set("X-Object-Sharing", *opts.Sharing)
	}
	if opts.Public != nil {
		h.Set("X-Object-Public", pyBool(*opts.Public))
	}
	setMetaHeaders(h, "X-Object-Meta-", opts.Meta)
	body := newHashmapBody(size, hashes)
	resp, err := c.rest.Do(ctx, &rest.Request{
		Method:        http.MethodPut,
		Path:          c.objectPath(container, object),
		Query:         []rest.Param{{Key: "hashmap", Value: "True"}, {Key: "format", Value: "json"}},
		Header:        h,
		Body:          body,
		GetBody:       func() (io.ReadCloser, error) { return io.NopCloser(newHashmapBody(size, hashes)), nil },
		ContentLength: body.Len(),
		Success:       []int{http.StatusCreated, http.StatusConflict},
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return &PutHashmapResult{Created: true, ETag: resp.Header.Get("ETag"), Version: resp.Header.Get("X-Object-Version")}, nil
	}
	missing, err := decodeDigestList(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("pithos: PUT %s/%s: reading the 409 list of missing blocks: %w", container, object, err)
	}
	return &PutHashmapResult{Missing: missing}, nil
}

// decodeDigestList reads a JSON array of hex hashes without holding it as
// strings: a first upload of a large image with small blocks lists them all.
func decodeDigestList(r io.Reader) ([]Digest, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("want a JSON array, got %v", tok)
	}
	var out []Digest
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		s, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("want a hash string, got %v", tok)
		}
		d, err := ParseDigest(s)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, nil
}

// UploadBlock stores one block in the account's block store (POST
// <container>?update&format=json) and returns the hash the server computed.
// The server splits a body longer than the container's block size into
// several blocks; callers send exactly one block.
func (c *Client) UploadBlock(ctx context.Context, container string, block []byte) (string, error) {
	if len(block) == 0 {
		return "", errors.New("pithos: upload block: empty block")
	}
	return c.uploadBlockBody(ctx, container, int64(len(block)),
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(block)), nil })
}

// uploadBlockBody is UploadBlock for a body of length bytes that open
// produces, once per attempt (so a retry never shares a reader with an
// attempt the transport may still be finishing).
func (c *Client) uploadBlockBody(ctx context.Context, container string, length int64, open func() (io.ReadCloser, error)) (string, error) {
	body, err := open()
	if err != nil {
		return "", err
	}
	// The transport closes every body it is given; this covers a request
	// that failed before reaching it (bodies tolerate a second Close).
	defer body.Close()
	resp, err := c.rest.Do(ctx, &rest.Request{
		Method:        http.MethodPost,
		Path:          c.containerPath(container),
		Query:         []rest.Param{{Key: "update"}, {Key: "format", Value: "json"}},
		Header:        http.Header{"Content-Type": {mediaOctetStream}},
		Body:          body,
		GetBody:       open,
		ContentLength: length,
		Success:       []int{http.StatusAccepted},
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var hashes []string
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&hashes); err != nil {
		return "", fmt.Errorf("pithos: upload block: reading the stored hashes: %w", err)
	}
	if len(hashes) == 0 {
		return "", errors.New("pithos: upload block: the server stored no block")
	}
	return hashes[0], nil
}

// Hashmap is an object's block map as GET ?hashmap returns it, plus the
// object headers that came with it.
type Hashmap struct {
	BlockSize int64    `json:"block_size"`
	BlockHash string   `json:"block_hash"`
	Bytes     int64    `json:"bytes"`
	Hashes    []string `json:"hashes"`

	// From the response headers.
	ETag        string `json:"-"`
	ObjectHash  string `json:"-"`
	Version     string `json:"-"`
	ContentType string `json:"-"`
}

// GetHashmapOptions select the version and preconditions of GetHashmap.
type GetHashmapOptions struct {
	Version              string
	IfMatch, IfNoneMatch string
}

// GetHashmap fetches an object's hashmap: GET <object>?hashmap=True&format=json.
// A size-0 object's map holds one hash, sha256(""), as the server stores it.
func (c *Client) GetHashmap(ctx context.Context, container, object string, opts *GetHashmapOptions) (*Hashmap, error) {
	if opts == nil {
		opts = &GetHashmapOptions{}
	}
	var q []rest.Param
	if opts.Version != "" {
		q = append(q, rest.Param{Key: "version", Value: opts.Version})
	}
	q = append(q, rest.Param{Key: "hashmap", Value: "True"}, rest.Param{Key: "format", Value: "json"})
	h := http.Header{}
	setIf(h, "If-Match", opts.IfMatch)
	setIf(h, "If-None-Match", opts.IfNoneMatch)
	resp, err := c.rest.Do(ctx, &rest.Request{
		Method: http.MethodGet, Path: c.objectPath(container, object), Query: q, Header: h,
		Success: []int{http.StatusOK},
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var hm Hashmap
	if err := json.NewDecoder(resp.Body).Decode(&hm); err != nil {
		return nil, fmt.Errorf("pithos: GET %s/%s hashmap: %w", container, object, err)
	}
	hm.ETag = resp.Header.Get("ETag")
	hm.ObjectHash = resp.Header.Get("X-Object-Hash")
	hm.Version = resp.Header.Get("X-Object-Version")
	hm.ContentType = resp.Header.Get("Content-Type")
	return &hm, nil
}

// RangeOptions pin a ranged GET to one version of the object.
type RangeOptions struct {
	Version string
	IfMatch string
}

// GetBlockRange reads exactly len(buf) bytes of object at off into buf with
// one ranged GET (Range: bytes=off-end, end inclusive).
func (c *Client) GetBlockRange(ctx context.Context, container, object string, off int64, buf []byte, opts *RangeOptions) error {
	if len(buf) == 0 {
		return nil
	}
	if opts == nil {
		opts = &RangeOptions{}
	}
	var q []rest.Param
	if opts.Version != "" {
		q = append(q, rest.Param{Key: "version", Value: opts.Version})
	}
	q = append(q, rest.Param{Key: "format", Value: "json"})
	end := off + int64(len(buf)) - 1
	h := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", off, end)}}
	setIf(h, "If-Match", opts.IfMatch)
	resp, err := c.rest.Do(ctx, &rest.Request{
		Method: http.MethodGet, Path: c.objectPath(container, object), Query: q, Header: h,
		Success: []int{http.StatusOK, http.StatusPartialContent},
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && off != 0 {
		// The server ignored the Range; do not stream the whole object.
		return fmt.Errorf("pithos: GET %s/%s bytes %d-%d: the server ignored the range", container, object, off, end)
	}
	if cr := resp.Header.Get("Content-Range"); resp.StatusCode == http.StatusPartialContent && cr != "" {
		if !strings.HasPrefix(cr, "bytes "+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(end, 10)+"/") {
			return fmt.Errorf("pithos: GET %s/%s bytes %d-%d: unexpected Content-Range %q", container, object, off, end, cr)
		}
	}
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return &rest.NetError{Method: http.MethodGet, URL: c.objectPath(container, object), Err: err}
	}
	return nil
}

func setIf(h http.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// hashmapBody streams {"hashes": ["…", …], "bytes": N} exactly as Python's
// json.dumps lays it out, without building the document in memory.
type hashmapBody struct {
	hashes  []Digest
	next    int
	pending []byte
	tail    []byte
	scratch []byte
}

const (
	hashmapHead = `{"hashes": [`
	// Each hash is "<64 hex>" with ", " between them.
	quotedHashLen = 2*sha256.Size + 2
)

func newHashmapBody(size int64, hashes []Digest) *hashmapBody {
	return &hashmapBody{
		hashes:  hashes,
		pending: []byte(hashmapHead),
		tail:    []byte(`], "bytes": ` + strconv.FormatInt(size, 10) + `}`),
	}
}

// Len is the exact body length, for Content-Length.
func (b *hashmapBody) Len() int64 {
	n := int64(len(hashmapHead)+len(b.tail)) + int64(len(b.hashes))*quotedHashLen
	if len(b.hashes) > 1 {
		n += int64(len(b.hashes)-1) * 2
	}
	return n
}

func (b *hashmapBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		switch {
		case b.next < len(b.hashes):
			b.fill()
		case b.tail != nil:
			b.pending, b.tail = b.tail, nil
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// fill renders the next batch of hashes into scratch.
func (b *hashmapBody) fill() {
	const batch = 256
	if b.scratch == nil {
		b.scratch = make([]byte, 0, batch*(quotedHashLen+2))
	}
	s := b.scratch[:0]
	end := min(b.next+batch, len(b.hashes))
	for i := b.next; i < end; i++ {
		if i > 0 {
			s = append(s, ',', ' ')
		}
		s = append(s, '"')
		s = hex.AppendEncode(s, b.hashes[i][:])
		s = append(s, '"')
	}
	b.next = end
	b.pending = s
}
