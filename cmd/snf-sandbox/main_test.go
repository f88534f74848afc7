package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

// snf-sandbox follows syncctl's exit codes: 0 for --help and --version,
// 2 for bad usage (unknown or malformed flags, stray arguments), without
// starting a server.
func TestUsageExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"help", []string{"--help"}, 0},
		{"version", []string{"--version"}, 0},
		{"stray argument", []string{"--listen", "127.0.0.1:0", "serve"}, 2},
		{"unknown flag", []string{"--port", "8080"}, 2},
		{"bad user", []string{"--user", "nouuid"}, 2},
		{"bad number", []string{"--quota", "lots"}, 2},
		{"bad duration", []string{"--latency", "5"}, 2},
		{"missing value", []string{"--data"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			assert.Equal(t, tt.code, exitCode(run(tt.args), &stderr), stderr.String())
		})
	}
}
