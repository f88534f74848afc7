package version

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFormat(t *testing.T) {
	gov := runtime.Version()
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "3f2a1c9d8e7f6a5b4c3d"}, {Key: "vcs.time", Value: "2025-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}
	tests := []struct {
		name   string
		linked string
		info   *debug.BuildInfo
		ok     bool
		want   string
	}{
		{"linked wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, true, "v1.2.3 (" + gov + ")"},
		{"module version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, true, "v0.9.0 (" + gov + ")"},
		{"local build with vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, true, "devel (3f2a1c9d8e7f-dirty, 2025-01-02T03:04:05Z, " + gov + ")"},
		{"no build info", "", nil, false, "devel (" + gov + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, format(tt.linked, tt.info, tt.ok))
		})
	}
	assert.NotEmpty(t, String())
}
