package daemon

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
)

// The console log (dev mode's) is coloured only on a terminal: a log file,
// a pipe or journald get plain text.
func TestConsoleLogIsColouredOnlyOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(config.Log{Level: "info", Format: "console"}, &buf)
	require.NoError(t, err)
	log.Warn("something to see")
	_ = log.Sync()
	assert.Contains(t, buf.String(), "WARN")
	assert.NotContains(t, buf.String(), "\x1b[", "no colour codes into a buffer")

	f, err := os.CreateTemp(t.TempDir(), "log")
	require.NoError(t, err)
	defer f.Close()
	log, err = NewLogger(config.Log{Level: "info", Format: "console"}, f)
	require.NoError(t, err)
	log.Error("into a file")
	_ = log.Sync()
	b, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Contains(t, string(b), "ERROR")
	assert.NotContains(t, string(b), "\x1b[", "no colour codes into a file")
}
