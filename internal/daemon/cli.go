package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/version"
)

// Exit codes, as syncctl's: 0 ok, 1 failure, 2 usage.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// CLIOptions are syncd's process surroundings; tests pass buffers.
type CLIOptions struct {
	Stdout, Stderr io.Writer
	// Getenv reads the SYNCD_* overrides; nil means os.Getenv.
	Getenv func(string) string
}

// usageError is a command line cobra did not reject but syncd does.
type usageError struct{ error }

// CLI runs syncd's command line (args without the program name) and returns
// the process exit code.
func CLI(ctx context.Context, args []string, o CLIOptions) int {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	root := rootCommand(o)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) || !ranCommand(cmd) {
		// cobra's own rejections (unknown command or flag, stray
		// arguments) happen before the command runs.
		fmt.Fprintf(o.Stderr, "syncd: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(o.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return ExitUsage
	}
	fmt.Fprintf(o.Stderr, "syncd: %v\n", err)
	return ExitFailure
}

// ranKey marks, in a command's annotations, that its RunE was entered.
const ranKey = "imagesync/ran"

func ranCommand(cmd *cobra.Command) bool {
	return cmd != nil && cmd.Annotations[ranKey] == "yes"
}

func markRan(cmd *cobra.Command) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[ranKey] = "yes"
}

func rootCommand(o CLIOptions) *cobra.Command {
	var mo MainOptions
	mo.Stderr, mo.Getenv = o.Stderr, o.Getenv
	root := &cobra.Command{
		Use:   "syncd [--config FILE] [--dev]",
		Short: "Keep a Synnefo cloud's image catalog in step with folders of disk images",
		Long: `syncd watches folders of disk images (*.diskdump), uploads them to Pithos+
with de-duplicating hashmap uploads, registers them with Plankton from
metafile templates and publishes them. Work goes through a Redis queue that
syncctl shows and steers.

Without --config it reads configs/syncd.yaml. --dev runs everything on this
machine with no set-up: an embedded Redis, a sandbox cloud on loopback and a
watch on ./images.

Exit codes: 0 ok, 1 failure, 2 usage.`,
		Example: "  syncd --dev\n  syncd --config /etc/imagesync/syncd.yaml\n  syncd config check --config /etc/imagesync/syncd.yaml",
		Version: version.String(),
		Args:    cobra.NoArgs,
		// Errors are printed once, by CLI, with the exit code they deserve.
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			markRan(cmd)
			mo.ConfigSet = cmd.Flags().Changed("config")
			return Main(cmd.Context(), mo)
		},
	}
	root.SetOut(o.Stdout)
	root.SetErr(o.Stderr)
	root.SetVersionTemplate("syncd {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVarP(&mo.ConfigPath, "config", "c", config.DefaultPath, "configuration file (YAML)")
	pf.BoolVar(&mo.Dev, "dev", false, "run everything locally: embedded Redis, a sandbox cloud on loopback, watching ./images")
	root.Flags().StringVar(&mo.DevListen, "dev-listen", "", "with --dev, where the sandbox cloud listens (default $SYNCD_DEV_LISTEN, else "+DevListen+")")
	root.AddCommand(configCommand(&mo, o))
	return root
}

func configCommand(mo *MainOptions, o CLIOptions) *cobra.Command {
	cfgCmd := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{errors.New("missing subcommand (try: syncd config check)")}
		},
	}
	check := &cobra.Command{
		Use:   "check",
		Short: "Check the configuration without starting anything (exit 0 when valid, 1 when not)",
		Long: `Load the configuration as syncd would (--config, default configs/syncd.yaml,
then the SYNCD_* environment variables) and check every key. Every problem
is listed at once, by key path. Nothing is started and nothing is contacted:
the cloud's address and the files the configuration names (token_file,
password_file) are checked, not used. With --dev, it checks as "syncd --dev" would.`,
		Example: "  syncd config check\n  syncd config check --config /etc/imagesync/syncd.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			markRan(cmd)
			mo.ConfigSet = cmd.Flags().Changed("config")
			cfg, err := LoadConfig(*mo)
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintf(o.Stderr, "syncd: warning: %s\n", w)
			}
			src := cfg.Source
			if src == "" {
				src = "built-in defaults (no " + mo.ConfigPath + ")"
			}
			fmt.Fprintf(o.Stdout, "%s: OK (node %s, %d watch root(s))\n", src, cfg.Node, len(cfg.Watch))
			return nil
		},
	}
	cfgCmd.AddCommand(check)
	return cfgCmd
}
