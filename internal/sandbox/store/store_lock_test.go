package store

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A data dir another sandbox holds is named as such, not as a bbolt
// "timeout" (issue 16: `snf-sandbox --data state/sandbox` beside a running
// `syncd --dev`).
func TestOpenSaysTheDataDirIsInUse(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, Options{})
	require.NoError(t, err)
	defer st.Close()
	_, err = Open(dir, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is in use by another process")
	assert.Contains(t, err.Error(), dir)
}
