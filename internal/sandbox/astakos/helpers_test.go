package astakos

import (
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/sandbox/wire"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPyHelpers(t *testing.T) {
	assert.Equal(t, "2013-06-19T15:23:59.975572+00:00",
		pythonISOFormat(time.Date(2013, 6, 19, 15, 23, 59, 975572000, time.UTC)))
	assert.Equal(t, "2012-08-10T00:59:59+00:00", pythonISOFormat(time.Date(2012, 8, 10, 0, 59, 59, 0, time.UTC)))
	for v, want := range map[string]bool{`null`: false, `""`: false, `"x"`: true, `0`: false, `1.5`: true, `[]`: false, `{}`: false, `{"a":1}`: true, `true`: true} {
		d, msg := wire.LoadsJSON([]byte(v))
		require.Empty(t, msg)
		assert.Equal(t, want, pyTruthy(d), v)
	}
	_, msg := wire.LoadsJSON([]byte("{\"a\": \"\xff\"}"))
	assert.Equal(t, "Could not decode request as UTF-8 string", msg)
}
