package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncd's command line follows syncctl's conventions: --help and --version
// exit 0, bad usage (unknown flags or commands, stray arguments) exits 2,
// and `syncd config check` exits 0 or 1 without starting anything.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte(`node: n1
cloud:
  auth_url: https://accounts.example.org/identity/v2.0
  token_file: `+filepath.Join(dir, "token")+`
redis: {addr: "127.0.0.1:1"}
watch: [{dir: ./images, container: images}]
`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("cloud:\n  auth_url: not a url\n  tokn: x\nsettle: five\nlog: {level: verbose}\n"), 0o600))

	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    []string
		stderr    []string
		noStderr  bool
		emptyArgs bool
	}{
		{name: "version", args: []string{"--version"}, code: 0, stdout: []string{"syncd devel ("}},
		{name: "help", args: []string{"--help"}, code: 0, stdout: []string{"Usage:", "syncd [--config FILE] [--dev]", "config"}},
		{name: "config check help", args: []string{"config", "check", "--help"}, code: 0, stdout: []string{"Nothing is started"}},
		{name: "stray argument", args: []string{"images"}, code: 2, stderr: []string{`unknown command "images"`, "Run 'syncd --help' for usage."}},
		{name: "unknown flag", args: []string{"--confg", good}, code: 2, stderr: []string{"unknown flag: --confg"}},
		{name: "flag without value", args: []string{"--config"}, code: 2, stderr: []string{"flag needs an argument"}},
		{name: "config alone", args: []string{"config"}, code: 2, stderr: []string{"syncd config check"}},
		{name: "config check stray", args: []string{"config", "check", "extra"}, code: 2, stderr: []string{`unknown command "extra"`}},
		{name: "config check good", args: []string{"config", "check", "--config", good}, code: 0, stdout: []string{good + ": OK (node n1, 1 watch root(s))"}, noStderr: true},
		{name: "config flag before the command", args: []string{"--config", good, "config", "check"}, code: 0, stdout: []string{": OK"}},
		{name: "config check bad", args: []string{"config", "check", "--config", bad}, code: 1, stderr: []string{
			"(5 problems)", "cloud.token: required",
			"cloud.tokn: unknown key (did you mean cloud.token?) (line 3)",
			`settle: "five" is not a duration`,
			`cloud.auth_url: "not a url" is not an http(s) URL (line 2)`,
			`log.level: "verbose": want debug, info, warn or error`,
		}},
		{name: "config check missing file", args: []string{"config", "check", "--config", filepath.Join(dir, "nope.yaml")}, code: 1, stderr: []string{"nope.yaml does not exist"}},
		// The daemon itself refuses a bad configuration before starting anything.
		{name: "run with bad config", args: []string{"--config", bad}, code: 1, stderr: []string{"cloud.tokn: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code := CLI(ctx, tt.args, CLIOptions{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
			assert.Equal(t, tt.code, code, "stdout: %s\nstderr: %s", out.String(), errOut.String())
			for _, s := range tt.stdout {
				assert.Contains(t, out.String(), s)
			}
			for _, s := range tt.stderr {
				assert.Contains(t, errOut.String(), s)
			}
			if tt.noStderr {
				assert.Empty(t, errOut.String())
			}
		})
	}
}

// Without a configuration file syncd does not start and retry forever
// against an unset cloud: it says what is missing and where it looked.
func TestCLINoConfigurationFile(t *testing.T) {
	t.Chdir(t.TempDir())
	var out, errOut bytes.Buffer
	code := CLI(context.Background(), []string{"config", "check"}, CLIOptions{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut.String(), "cloud.auth_url: required")
	assert.Contains(t, errOut.String(), "configs/syncd.yaml does not exist")

	// The environment alone can make a valid configuration (containers).
	env := map[string]string{"SYNCD_AUTH_URL": "https://accounts.example.org/identity/v2.0", "SYNCD_TOKEN": "t"}
	out.Reset()
	errOut.Reset()
	code = CLI(context.Background(), []string{"config", "check"}, CLIOptions{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }})
	assert.Equal(t, 0, code, errOut.String())
	assert.Contains(t, out.String(), "built-in defaults (no configs/syncd.yaml): OK")
}
