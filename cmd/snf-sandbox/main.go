// Command snf-sandbox runs a local stand-in for a Synnefo deployment
// (Astakos identity, Pithos+, Plankton) on one HTTP listener.
//
//	snf-sandbox --listen 127.0.0.1:PORT --data DIR --user NAME:UUID:TOKEN [--user …]
//	            [--block-size 4194304] [--fail-rate 0.0] [--latency 0s] [--quota BYTES]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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

	srv, err := sandbox.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	printEndpoints(base, cfg.DataDir, srv.Users())

	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Println("snf-sandbox: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// demoUser keeps the generated demo user in the data dir, so its objects
// stay reachable across restarts.
func demoUser(dir string) (sandbox.User, error) {
	p := filepath.Join(dir, "demo-user")
	if b, err := os.ReadFile(p); err == nil {
		return sandbox.ParseUser(strings.TrimSpace(string(b)))
	}
	u := sandbox.User{Name: "demo", UUID: "demo-" + randomHex(8), Token: randomHex(16)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sandbox.User{}, err
	}
	line := u.Name + ":" + u.UUID + ":" + u.Token + "\n"
	return u, os.WriteFile(p, []byte(line), 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
