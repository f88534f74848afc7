package pithos

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/rest"
)

// ObjectInfo is what the server reports about an object (HEAD or GET),
// with the server's URL-quoting of header values undone.
type ObjectInfo struct {
	Container string
	Name      string
	// Bytes is the whole object's size, also for a ranged GET.
	Bytes int64
	// Hash is X-Object-Hash: the Merkle root of the block hashes.
	Hash string
	// ETag equals Hash unless the server computes MD5s (UPDATE_MD5).
	ETag string
	// UUID survives overwrites, metadata updates and moves; a copy or a
	// re-creation after delete gets a new one.
	UUID string
	// Version is the global serial of this version.
	Version            int64
	VersionTimestamp   time.Time
	LastModified       time.Time
	ContentType        string
	ContentEncoding    string
	ContentDisposition string
	ModifiedBy         string
	// Meta holds the X-Object-Meta-* entries, keys lowercased (the server
	// title-cases them and turns '_' into '-').
	Meta map[string]string
	// Sharing is nil when the object carries no permissions.
	Sharing *Sharing
	// SharedBy is the path the permissions are inherited from, if not the
	// object's own; AllowedTo ("read" or "write") is set for non-owners.
	SharedBy  string
	AllowedTo string
	// PublicURL is set when the object is published (reported to the owner only).
	PublicURL string
}

func parseObjectHeaders(container, object string, h http.Header) (*ObjectInfo, error) {
	oi := &ObjectInfo{
		Container:          container,
		Name:               object,
		Hash:               headerValue(h, "X-Object-Hash"),
		ETag:               strings.Trim(h.Get("ETag"), `"`),
		UUID:               headerValue(h, "X-Object-Uuid"),
		ContentType:        headerValue(h, "Content-Type"),
		ContentEncoding:    headerValue(h, "Content-Encoding"),
		ContentDisposition: headerValue(h, "Content-Disposition"),
		ModifiedBy:         headerValue(h, "X-Object-Modified-By"),
		Meta:               metaHeaders(h, "X-Object-Meta-"),
		SharedBy:           headerValue(h, "X-Object-Shared-By"),
		AllowedTo:          headerValue(h, "X-Object-Allowed-To"),
		PublicURL:          headerValue(h, "X-Object-Public"),
		LastModified:       timeHeader(h, "Last-Modified"),
		VersionTimestamp:   timeHeader(h, "X-Object-Version-Timestamp"),
	}
	var err error
	if oi.Version, err = intHeader(h, "X-Object-Version"); err != nil {
		return nil, fmt.Errorf("pithos: %s/%s: %w", container, object, err)
	}
	if oi.Bytes, err = intHeader(h, "Content-Length"); err != nil {
		return nil, fmt.Errorf("pithos: %s/%s: %w", container, object, err)
	}
	if v := headerValue(h, "X-Object-Sharing"); v != "" {
		s, err := ParseSharing(v)
		if err != nil {
			return nil, err
		}
		oi.Sharing = &s
	}
	return oi, nil
}

// InfoOptions select what ObjectInfo and GetObject read.
type InfoOptions struct {
	// Version, if not 0, reads that past version (see Versions). The
	// server then omits sharing and public information.
	Version int64
}

func (o *InfoOptions) query() []rest.Param {
	if o == nil || o.Version == 0 {
		return nil
	}
	return []rest.Param{{Key: "version", Value: strconv.FormatInt(o.Version, 10)}}
}

// ObjectInfo reads an object's headers (HEAD, 200). A missing object (or
// version) is IsNotFound; another account's object without a share is
// IsForbidden.
func (c *Client) ObjectInfo(ctx context.Context, container, object string, opts *InfoOptions) (*ObjectInfo, error) {
	resp, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method:  http.MethodHead,
		Path:    c.objectPath(container, object),
		Query:   opts.query(),
		Success: []int{http.StatusOK, http.StatusNoContent},
	})
	if err != nil {
		return nil, err
	}
	return parseObjectHeaders(container, object, resp.Header)
}

// GetOptions select a version and a byte range of GetObject.
type GetOptions struct {
	Version int64
	// Offset and Length select bytes [Offset, Offset+Length); Length 0
	// reads to the end. Unlike RFC 7233, Pithos answers 416 to a range
	// that reaches past the end.
	Offset, Length int64
	// IfMatch, if set, makes the read fail with 412 unless the object's
	// ETag matches (IsPreconditionFailed).
	IfMatch string
}

// GetObject opens an object's data. The caller must close the reader. info
// describes the whole object (Bytes is its full size even for a range).
func (c *Client) GetObject(ctx context.Context, container, object string, opts *GetOptions) (body io.ReadCloser, info *ObjectInfo, err error) {
	if opts == nil {
		opts = &GetOptions{}
	}
	if opts.Offset < 0 || opts.Length < 0 {
		return nil, nil, fmt.Errorf("pithos: GET %s/%s: negative range %d+%d", container, object, opts.Offset, opts.Length)
	}
	h := http.Header{}
	ranged := opts.Offset > 0 || opts.Length > 0
	if ranged {
		r := "bytes=" + strconv.FormatInt(opts.Offset, 10) + "-"
		if opts.Length > 0 {
			r += strconv.FormatInt(opts.Offset+opts.Length-1, 10)
		}
		h.Set("Range", r)
	}
	setIf(h, "If-Match", opts.IfMatch)
	resp, err := c.rest.Do(ctx, &rest.Request{
		Method:  http.MethodGet,
		Path:    c.objectPath(container, object),
		Query:   (&InfoOptions{Version: opts.Version}).query(),
		Header:  h,
		Success: []int{http.StatusOK, http.StatusPartialContent},
	})
	if err != nil {
		return nil, nil, err
	}
	info, err = parseObjectHeaders(container, object, resp.Header)
	if err != nil {
		resp.Body.Close()
		return nil, nil, err
	}
	if ranged {
		if resp.StatusCode != http.StatusPartialContent {
			resp.Body.Close()
			return nil, nil, fmt.Errorf("pithos: GET %s/%s: the server ignored the range %s", container, object, h.Get("Range"))
		}
		total, err := contentRangeTotal(resp.Header.Get("Content-Range"))
		if err != nil {
			resp.Body.Close()
			return nil, nil, fmt.Errorf("pithos: GET %s/%s: %w", container, object, err)
		}
		info.Bytes = total
	}
	return resp.Body, info, nil
}

// contentRangeTotal reads the size from "bytes S-E/TOTAL".
func contentRangeTotal(cr string) (int64, error) {
	_, total, ok := strings.Cut(cr, "/")
	if !ok || !strings.HasPrefix(cr, "bytes ") {
		return 0, fmt.Errorf("bad Content-Range %q", cr)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad Content-Range %q", cr)
	}
	return n, nil
}

// PutOptions are the headers of a data PUT.
type PutOptions struct {
	// ContentType defaults to application/octet-stream.
	ContentType        string
	ContentEncoding    string
	ContentDisposition string
	// Meta replaces the object's own metadata (other domains are kept).
	Meta map[string]string
	// Sharing, if not nil, replaces the permissions (an empty one clears them).
	Sharing *Sharing
	// Public, if not nil, publishes or unpublishes the object.
	Public *bool
	// IfMatch / IfNoneMatch make the write conditional ("*" with
	// IfNoneMatch: only if absent); a failed condition is a 412.
	IfMatch, IfNoneMatch string
}

// WriteResult is what the server reports after a write.
type WriteResult struct {
	// ETag is the new Merkle hash (data PUTs only).
	ETag string
	// Version is the new version's serial, 0 if the server sent none.
	Version int64
}

// PutObject stores data as the object in one request. It is meant for small
// objects (metafiles); images go through Upload. The MD5 is sent as ETag so
// the server refuses a corrupted body (422).
func (c *Client) PutObject(ctx context.Context, container, object string, data []byte, opts *PutOptions) (*WriteResult, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	h := http.Header{}
	ct := opts.ContentType
	if ct == "" {
		ct = mediaOctetStream
	}
	h.Set("Content-Type", ct)
	sum := md5.Sum(data)
	h.Set("ETag", hex.EncodeToString(sum[:]))
	setIf(h, "If-Match", opts.IfMatch)
	setIf(h, "If-None-Match", opts.IfNoneMatch)
	if opts.ContentEncoding != "" {
		h.Set("Content-Encoding", quoteHeaderValue(opts.ContentEncoding))
	}
	if opts.ContentDisposition != "" {
		h.Set("Content-Disposition", quoteHeaderValue(opts.ContentDisposition))
	}
	if err := setWriteHeaders(h, opts.Sharing, opts.Public, opts.Meta); err != nil {
		return nil, err
	}
	resp, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method:        http.MethodPut,
		Path:          c.objectPath(container, object),
		Header:        h,
		Body:          bytes.NewReader(data),
		ContentLength: int64(len(data)),
		Success:       []int{http.StatusCreated},
	})
	if err != nil {
		return nil, err
	}
	return writeResult(resp.Header), nil
}

func writeResult(h http.Header) *WriteResult {
	v, _ := intHeader(h, "X-Object-Version")
	return &WriteResult{ETag: strings.Trim(h.Get("ETag"), `"`), Version: v}
}

// DeleteObject deletes an object (204). A missing one is IsNotFound.
func (c *Client) DeleteObject(ctx context.Context, container, object string) error {
	_, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method:  http.MethodDelete,
		Path:    c.objectPath(container, object),
		Success: []int{http.StatusNoContent},
	})
	return err
}

// CopyOptions shape a copy or move.
type CopyOptions struct {
	// SourceAccount is the account the source lives in (default: this one).
	SourceAccount string
	// SourceVersion copies a past version (copy only).
	SourceVersion int64
	// ContentType, if set, is the destination's type; otherwise the
	// source's is kept.
	ContentType string
	// Meta, if not empty, is the destination's metadata.
	Meta    map[string]string
	Sharing *Sharing
	Public  *bool
}

// CopyObject copies src to dst server-side (PUT dst with X-Copy-From). The
// copy gets a new UUID when it lands on a different path.
func (c *Client) CopyObject(ctx context.Context, srcContainer, srcObject, dstContainer, dstObject string, opts *CopyOptions) (*WriteResult, error) {
	return c.copyOrMove(ctx, "X-Copy-From", srcContainer, srcObject, dstContainer, dstObject, opts)
}

// MoveObject moves src to dst server-side (PUT dst with X-Move-From). The
// object keeps its UUID.
func (c *Client) MoveObject(ctx context.Context, srcContainer, srcObject, dstContainer, dstObject string, opts *CopyOptions) (*WriteResult, error) {
	if opts != nil && opts.SourceVersion != 0 {
		return nil, fmt.Errorf("pithos: move %s/%s: a source version can only be copied", srcContainer, srcObject)
	}
	return c.copyOrMove(ctx, "X-Move-From", srcContainer, srcObject, dstContainer, dstObject, opts)
}

func (c *Client) copyOrMove(ctx context.Context, fromHeader, srcContainer, srcObject, dstContainer, dstObject string, opts *CopyOptions) (*WriteResult, error) {
	if opts == nil {
		opts = &CopyOptions{}
	}
	if srcContainer == "" || srcObject == "" {
		return nil, fmt.Errorf("pithos: %s needs a source container and object", fromHeader)
	}
	h := http.Header{}
	// The server unquotes the value, so the name travels percent-encoded
	// exactly like a path (spaces, '%', non-ASCII).
	h.Set(fromHeader, rest.QueryEscape("/"+srcContainer+"/"+srcObject))
	if opts.SourceAccount != "" {
		h.Set("X-Source-Account", rest.QueryEscape(opts.SourceAccount))
	}
	if opts.SourceVersion != 0 {
		h.Set("X-Source-Version", strconv.FormatInt(opts.SourceVersion, 10))
	}
	setIf(h, "Content-Type", opts.ContentType)
	if err := setWriteHeaders(h, opts.Sharing, opts.Public, opts.Meta); err != nil {
		return nil, err
	}
	resp, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method:  http.MethodPut,
		Path:    c.objectPath(dstContainer, dstObject),
		Header:  h,
		Success: []int{http.StatusCreated},
	})
	if err != nil {
		return nil, err
	}
	return writeResult(resp.Header), nil
}

// UpdateObjectMeta merges meta into the object's metadata (POST ?update);
// an empty value deletes that key. It returns the new version's serial.
// As on every Pithos server, values lose '~' characters and (being sent
// back unquoted) leading and trailing spaces.
func (c *Client) UpdateObjectMeta(ctx context.Context, container, object string, meta map[string]string) (version int64, err error) {
	if len(meta) == 0 {
		return 0, nil
	}
	h := http.Header{}
	setMetaHeaders(h, "X-Object-Meta-", meta)
	err = c.postObjectUpdate(ctx, container, object, h, &version)
	return version, err
}

// setWriteHeaders sets what a PUT that creates an object version may carry
// besides its content: permissions, the public flag and the object's own
// metadata. Invalid permissions are refused before any request.
func setWriteHeaders(h http.Header, sharing *Sharing, public *bool, meta map[string]string) error {
	if sharing != nil {
		if err := sharing.validate(); err != nil {
			return err
		}
		h.Set("X-Object-Sharing", sharing.header())
	}
	if public != nil {
		h.Set("X-Object-Public", pyBool(*public))
	}
	setMetaHeaders(h, "X-Object-Meta-", meta)
	return nil
}
