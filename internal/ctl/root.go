// Package ctl is syncctl, the operator's view of imagesync: it reads the same
// configuration as syncd, talks to the same Redis (the daemon's embedded one
// or a real server) and, for the commands that compare with the cloud, to
// the same Synnefo deployment.
//
// Every command prints a human table by default and, with --json, one JSON
// document whose shape is documented on the type that produces it (see
// json.go). Exit codes: 0 ok, 1 failure, 2 usage.
package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/redisconn"
	"github.com/imagesync/imagesync/internal/version"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Options are syncctl's process surroundings; tests pass buffers.
type Options struct {
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (SYNCD_* overrides); nil means os.Getenv.
	Getenv func(string) string
	// Terminal reports whether Stdout is a terminal (redrawn --watch
	// screens, progress bars); nil means detect it.
	Terminal func(io.Writer) bool
}

// Main runs syncctl with args (without the program name) and returns the
// process exit code.
func Main(ctx context.Context, args []string, o Options) int {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Terminal == nil {
		o.Terminal = isTerminal
	}
	a := newApp(o)
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(a.stderr, "syncctl: %s\n", escapeText(ee.err.Error()))
		}
		if ee.code == ExitFailure {
			for _, h := range a.hints(ee.err) {
				fmt.Fprintf(a.stderr, "syncctl: %s\n", escapeText(h))
			}
		}
		if ee.code == ExitUsage && cmd != nil {
			fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return ee.code
	}
	// Anything cobra itself rejected (unknown command or flag, wrong number
	// of arguments) is a usage error.
	fmt.Fprintf(a.stderr, "syncctl: %s\n", escapeText(err.Error()))
	if cmd != nil {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return ExitUsage
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error // nil: the command already said everything
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...)}
}

// failed reports a failure the command has already rendered.
func failed(err error) error { return &exitError{code: ExitFailure, err: err} }

// app is one syncctl invocation: flags, the lazily loaded configuration and
// the lazily opened Redis connection.
type app struct {
	opts    Options
	redact  *redactor
	stdout  io.Writer
	stderr  io.Writer
	cfgPath string
	jsonOut bool

	cfg  *config.Config
	conn *redisconn.Conn
	insp *asynq.Inspector
}

func newApp(o Options) *app {
	r := &redactor{}
	return &app{opts: o, redact: r, stdout: &redactingWriter{w: o.Stdout, r: r}, stderr: &redactingWriter{w: o.Stderr, r: r}}
}

func (a *app) close() {
	if a.conn != nil {
		_ = a.conn.Close()
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "syncctl",
		Short: "Operate imagesync: queues, jobs, plans and image sync state",
		Long: `syncctl shows and steers imagesync's work. It reads syncd's configuration
(--config, SYNCD_* environment variables) to find the same Redis, watch roots
and cloud.

Every command accepts --json for a stable, machine-readable document.
Exit codes: 0 ok, 1 failure, 2 usage.`,
		Version:       version.String(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("syncctl {{.Version}}\n")
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: err}
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&a.cfgPath, "config", "c", config.DefaultPath, "configuration file (the one syncd uses)")
	pf.BoolVar(&a.jsonOut, "json", false, "print one JSON document instead of tables")
	root.AddCommand(
		a.statusCommand(),
		a.listCommand(),
		a.inspectCommand(),
		a.retryCommand(),
		a.resyncCommand(),
		a.planCommand(),
		a.republishCommand(),
		a.imagesCommand(),
		a.verifyCommand(),
		a.downloadCommand(),
		a.nodesCommand(),
	)
	return root
}

// run wraps a command's body so that its errors exit with 1 unless they
// say otherwise.
func run(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err == nil {
			return nil
		}
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return &exitError{code: ExitFailure, err: err}
	}
}

// config loads the configuration once. A missing file is fine unless
// --config was given: with no file syncctl finds the dev daemon's embedded
// Redis at its default address.
func (a *app) config(cmd *cobra.Command) (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	explicit := cmd.Flags().Changed("config")
	path := a.cfgPath
	if !explicit {
		path = defaultConfigPath(path)
		if dev := devConfigPath(); path != dev && exists(path) && exists(dev) {
			fmt.Fprintf(a.stderr, "syncctl: reading %s; a `syncd --dev` run here left %s (pass --config %s to use that one)\n", path, dev, dev)
		}
	}
	cfg, err := config.Load(path, !explicit, a.opts.Getenv)
	if err != nil {
		return nil, err
	}
	a.redact.add(cfg.Cloud.Token, cfg.Redis.Password, cfg.Redis.Sentinel.Password)
	for _, w := range cfg.Warnings {
		fmt.Fprintf(a.stderr, "syncctl: warning: %s\n", escapeText(w))
	}
	a.cfg = cfg
	return cfg, nil
}

// defaultConfigPath is def when it exists, else the configuration a
// `syncd --dev` running in this directory left under ./state, so that the
// README's quick start needs no configuration file.
func defaultConfigPath(def string) string {
	if _, err := os.Stat(def); err == nil {
		return def
	}
	dev := filepath.Join(config.Default().StateDir, config.DevConfigFile)
	if _, err := os.Stat(dev); err == nil {
		return dev
	}
	return def
}

// secrets reads token_file and password_file; only the commands that talk
// to the cloud need it.
func (a *app) secrets(cmd *cobra.Command) (*config.Config, error) {
	cfg, err := a.config(cmd)
	if err != nil {
		return nil, err
	}
	if err := cfg.ResolveSecrets(); err != nil {
		return nil, err
	}
	a.redact.add(cfg.Cloud.Token, cfg.Redis.Password, cfg.Redis.Sentinel.Password)
	return cfg, nil
}

// redis connects once. redisconn's messages already say what to check
// ("is syncd running?").
func (a *app) redis(cmd *cobra.Command) (*redisconn.Conn, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	cfg, err := a.config(cmd)
	if err != nil {
		return nil, err
	}
	// Only the Redis passwords: the cloud token is not needed here.
	if err := cfg.ResolveRedisSecrets(); err != nil {
		return nil, err
	}
	a.redact.add(cfg.Redis.Password, cfg.Redis.Sentinel.Password)
	if err := probeRedis(cmd.Context(), cfg.Redis); err != nil {
		return nil, err
	}
	conn, err := redisconn.Dial(cmd.Context(), cfg.Redis)
	if err != nil {
		return nil, err
	}
	a.conn = conn
	a.insp = asynq.NewInspectorFromRedisClient(conn.Client)
	return conn, nil
}

func (a *app) inspector(cmd *cobra.Command) (*asynq.Inspector, error) {
	if _, err := a.redis(cmd); err != nil {
		return nil, err
	}
	return a.insp, nil
}

// queues lists the queues Redis knows, plus the ones this node's syncd
// serves, so a fresh installation shows its (empty) queues too.
func (a *app) queues(cmd *cobra.Command) ([]string, error) {
	insp, err := a.inspector(cmd)
	if err != nil {
		return nil, err
	}
	known, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	qs := append(known, jobs.QueueDefault, jobs.QueueSharedUpload, jobs.UploadQueue(a.cfg.Node), jobs.NodeQueue(a.cfg.Node))
	slices.Sort(qs)
	return slices.Compact(qs), nil
}

// writeOut writes one whole human rendering, so redaction sees complete
// lines, with any control character a renderer let through escaped.
func (a *app) writeOut(b []byte) error {
	return a.writeRaw(sanitizeOutput(b))
}

// writeRaw writes JSON, or terminal control sequences of syncctl's own.
func (a *app) writeRaw(b []byte) error {
	_, err := a.stdout.Write(b)
	return err
}

// redactor replaces secrets in everything syncctl prints. Nothing should
// carry them (payloads never hold tokens), but an error message from a
// proxy or a misconfigured server might echo one.
type redactor struct {
	mu      sync.Mutex
	secrets []string
}

func (r *redactor) add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		// Very short values would redact ordinary words.
		if len(s) >= 4 && !slices.Contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
}

func (r *redactor) apply(b []byte) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.secrets {
		if bytes.Contains(b, []byte(s)) {
			b = bytes.ReplaceAll(b, []byte(s), []byte("[REDACTED]"))
		}
	}
	return b
}

type redactingWriter struct {
	w io.Writer
	r *redactor
}

func (w *redactingWriter) Write(b []byte) (int, error) {
	if _, err := w.w.Write(w.r.apply(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// oneLine keeps multi-line error messages on one table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
