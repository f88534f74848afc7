// Command syncctl operates imagesync: queue status, job inspection and
// retries, forced re-syncs, plans, the republish sweep and the sync state of
// registered images. See `syncctl --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/imagesync/imagesync/internal/ctl"
)

func main() {
	// go-redis logs dial retries on its own; syncctl reports the failure
	// once, with what to check.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], ctl.Options{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
