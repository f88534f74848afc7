package pithos

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	"github.com/imagesync/imagesync/internal/rest"
)

// BlockError names the block an upload or download failed on. Err is the
// cause (a *rest.Error, a *rest.NetError, a read error, ErrFileChanged, …).
type BlockError struct {
	Index  int64
	Offset int64
	// Hash is the block's expected hex hash, when known.
	Hash string
	// Op is what failed: "read", "upload", "download" or "write".
	Op  string
	Err error
}

func (e *BlockError) Error() string {
	s := fmt.Sprintf("block %d at offset %d", e.Index, e.Offset)
	if e.Hash != "" {
		s += fmt.Sprintf(" (hash %.12s…)", e.Hash)
	}
	return fmt.Sprintf("%s: %s failed: %v", s, e.Op, e.Err)
}

func (e *BlockError) Unwrap() error { return e.Err }

// QuotaError is an upload refused for lack of storage quota: either by the
// pre-check (Err is nil) before any block was sent, or by the server's 413
// (Err is the *rest.Error). Needed and Free are in bytes; Needed is 0 and
// Free is -1 when the server did not say.
type QuotaError struct {
	Object string
	Needed int64
	Free   int64
	// MissingBytes is what would have had to be sent (pre-check only).
	MissingBytes int64
	Err          error
}

func (e *QuotaError) Error() string {
	msg := fmt.Sprintf("not enough storage quota to upload %s", e.Object)
	if e.Needed > 0 {
		msg += ": needs " + humanBytes(e.Needed)
		if e.Free >= 0 {
			msg += ", but only " + humanBytes(e.Free) + " is free"
		}
	}
	msg += " (free space in Pithos+ or raise the pithos.diskspace quota)"
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *QuotaError) Unwrap() error { return e.Err }

// HashMismatchError is an object whose server-side hash differs from the
// Merkle root of the local hashmap: the object is not the local file.
type HashMismatchError struct {
	Object string
	Local  string
	Remote string
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("object %s: server hash %s does not match the local hash %s", e.Object, e.Remote, e.Local)
}

// astakosQuotaDetails matches the details of Astakos' commission refusal:
// "… Available: X, Requested: Y".
var astakosQuotaDetails = regexp.MustCompile(`Available:\s*(-?\d+),\s*Requested:\s*(\d+)`)

// asQuotaError turns a 413 into a *QuotaError; other errors pass through.
func asQuotaError(err error, object string) error {
	var re *rest.Error
	if !errors.As(err, &re) || re.Status != http.StatusRequestEntityTooLarge {
		return err
	}
	q := &QuotaError{Object: object, Free: -1, Err: err}
	if m := astakosQuotaDetails.FindStringSubmatch(re.Details + " " + re.Message); m != nil {
		q.Free, _ = strconv.ParseInt(m[1], 10, 64)
		q.Needed, _ = strconv.ParseInt(m[2], 10, 64)
	}
	return q
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}

// Permanent marks a quota refusal as not worth retrying: the same upload
// fails the same way until somebody frees space or raises the quota.
func (e *QuotaError) Permanent() bool { return true }
