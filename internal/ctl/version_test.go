package ctl

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestVersionAndHelpExitZero(t *testing.T) {
	code, out, errOut := runCtl(t, "--version")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "syncctl devel (")
	code, out, _ = runCtl(t, "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "Usage:")
}
