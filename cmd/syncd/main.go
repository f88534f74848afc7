// Command syncd watches folders of disk images and keeps a Synnefo cloud's
// image catalog in step with them. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/daemon"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("syncd", flag.ContinueOnError)
	cfgPath := fs.String("config", config.DefaultPath, "configuration file (YAML)")
	dev := fs.Bool("dev", false, "run everything locally: embedded Redis, a sandbox cloud on loopback, watching ./images")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Main(ctx, daemon.MainOptions{ConfigPath: *cfgPath, ConfigSet: flagSet(fs, "config"), Dev: *dev, Stderr: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "syncd:", err)
		return 1
	}
	return 0
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
