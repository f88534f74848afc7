// Command snf-sandbox runs a local stand-in for a Synnefo deployment
// (Astakos identity, Pithos+, Plankton) on one HTTP listener.
//
//	snf-sandbox --listen 127.0.0.1:PORT --data DIR --user NAME:UUID:TOKEN [--user …]
//	            [--block-size 4194304] [--fail-rate 0.0] [--latency 0s] [--quota BYTES]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/version"
)

func main() {
	os.Exit(exitCode(run(os.Args[1:]), os.Stderr))
}

// exitCode follows syncctl's conventions: 0 ok (and --help, --version),
// 1 failure, 2 usage.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2 // the flag set has printed the problem and the usage
	default:
		fmt.Fprintln(stderr, "snf-sandbox:", err)
		return 1
	}
}

// usageError is a command line the flag set has already complained about.
type usageError struct{ error }

// errVersion stops run after --version.
var errVersion = flag.ErrHelp

func run(args []string) error {
	fs := flag.NewFlagSet("snf-sandbox", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on (host:port)")
	var cfg sandbox.Config
	fs.StringVar(&cfg.DataDir, "data", "", "directory persisting blocks and metadata (default: a temporary one)")
	fs.IntVar(&cfg.BlockSize, "block-size", 4194304, "block size of new containers")
	fs.Float64Var(&cfg.FailRate, "fail-rate", 0, "fraction of block uploads and hashmap PUTs answered 503")
	fs.DurationVar(&cfg.Latency, "latency", 0, "delay added to block uploads and hashmap PUTs")
	fs.Int64Var(&cfg.Quota, "quota", 0, "each user's pithos.diskspace limit in bytes (0: unlimited)")
	fs.Func("user", "a user NAME:UUID:TOKEN (repeatable)", func(v string) error {
		u, err := sandbox.ParseUser(v)
		if err != nil {
			return err
		}
		cfg.Users = append(cfg.Users, u)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if *showVersion {
		fmt.Printf("snf-sandbox %s\n", version.String())
		return errVersion
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments %q (every setting is a flag)\n", fs.Args())
		fs.Usage()
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if len(cfg.Users) == 0 && cfg.DataDir != "" {
		u, err := demoUser(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.Users = []sandbox.User{u}
	}

	rs, err := sandbox.Listen(cfg, *listen)
	if err != nil {
		return err
	}
	printEndpoints(rs.URL, cfg.DataDir, rs.Users())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-rs.Done():
		return rs.Close() // with the reason serving stopped
	case <-ctx.Done():
	}
	fmt.Println("snf-sandbox: shutting down")
	return rs.Close()
}

// demoUUID is the account of the demo user kept in a data dir.
const demoUUID = "de300000-0000-4000-8000-000000000001"

// demoUser is the user of a data dir run without --user: its token is
// kept in the data dir, so its objects stay reachable across restarts.
func demoUser(dir string) (sandbox.User, error) {
	// A data dir from before the token file keeps its whole user.
	if b, err := os.ReadFile(filepath.Join(dir, "demo-user")); err == nil {
		return sandbox.ParseUser(strings.TrimSpace(string(b)))
	}
	tok, err := sandbox.StoredToken(filepath.Join(dir, "demo-token"), "demo-")
	if err != nil {
		return sandbox.User{}, err
	}
	return sandbox.User{Name: "demo", UUID: demoUUID, Token: tok}, nil
}

// printEndpoints shows where everything is; tokens are printed on purpose,
// this is a local sandbox.
func printEndpoints(base, data string, users []sandbox.User) {
	if data == "" {
		data = "(temporary)"
	}
	fmt.Printf("snf-sandbox listening on %s (data %s)\n", base, data)
	fmt.Printf("  identity      %s/identity/v2.0  (POST /tokens)\n", base)
	fmt.Printf("  object-store  %s/object-store/v1\n", base)
	fmt.Printf("  image         %s/image\n", base)
	fmt.Printf("  account       %s/account/v1.0\n", base)
	fmt.Printf("  stats         %s/_sandbox/stats\n", base)
	for _, u := range users {
		fmt.Printf("  user %-10s uuid %s  token %s\n", u.Name, u.UUID, u.Token)
	}
}
