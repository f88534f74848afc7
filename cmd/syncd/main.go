// Command syncd watches folders of disk images and keeps a Synnefo cloud's
// image catalog in step with them. See README.md and `syncd --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/imagesync/imagesync/internal/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := daemon.CLI(ctx, os.Args[1:], daemon.CLIOptions{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
