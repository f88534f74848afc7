//go:build !linux

package pithos

import (
	"errors"
	"os"
)

// reopenFile is unsupported here: blocks are read with ReadAt and sent from
// memory.
func reopenFile(*os.File) (*os.File, error) { return nil, errors.ErrUnsupported }
