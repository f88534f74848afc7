//go:build !unix

package jobs

import (
	"io/fs"
	"os"
)

func fileIdentity(fs.FileInfo) (dev, ino uint64) { return 0, 0 }

func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}
