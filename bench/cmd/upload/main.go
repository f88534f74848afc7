// Command upload uploads one file to Pithos+ with imagesync's hashmap engine
// and default settings, and prints what it did as one JSON line. bench/run.sh
// uses it to time uploads and to measure peak RSS.
//
//	upload -url http://127.0.0.1:PORT/object-store/v1 -account UUID -token TOKEN \
//	       [-container images] [-object NAME] [-cache DIR] FILE
//	upload -sha256 FILE   # single-core crypto/sha256 rate over FILE, the reference
//	upload -put -url … -account UUID -token TOKEN [-container images] [-object NAME] FILE
//	                      # one plain PUT of the whole file with Go's HTTP client
//	                      # (the server hashes and stores it): the wire limit
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/rest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "upload:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "", "object-store endpoint (…/object-store/v1)")
	account := flag.String("account", "", "account uuid")
	token := flag.String("token", os.Getenv("IMAGESYNC_TOKEN"), "token (default $IMAGESYNC_TOKEN)")
	container := flag.String("container", "images", "container")
	object := flag.String("object", "", "object name (default: the file's base name)")
	cacheDir := flag.String("cache", "", "hashmap cache directory (default: none)")
	blocks := flag.Int("blocks", 0, "blocks in flight (default 8)")
	workers := flag.Int("hash-workers", 0, "hashing workers (default GOMAXPROCS)")
	sha := flag.Bool("sha256", false, "only hash FILE with crypto/sha256 on one core and print the rate")
	put := flag.Bool("put", false, "send FILE as one plain PUT (no hashmap, no engine) and print the rate")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the upload to this file")
	flag.Parse()
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *sha && flag.NArg() == 1 {
		return sha256Rate(flag.Arg(0))
	}
	if flag.NArg() != 1 || *url == "" || *account == "" || *token == "" {
		flag.Usage()
		return errors.New("want -url, -account, -token and one FILE")
	}
	path := flag.Arg(0)
	if *object == "" {
		*object = filepath.Base(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if *put {
		return singlePut(*url, *account, *token, *container, *object, f)
	}

	opts := pithos.UploadOptions{BlockConcurrency: *blocks, HashWorkers: *workers}
	if *cacheDir != "" {
		if opts.Cache, err = pithos.OpenHashmapCache(*cacheDir); err != nil {
			return err
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 32, ResponseHeaderTimeout: 5 * time.Minute}
	doer := rest.NewRetrying(&http.Client{Transport: tr}, rest.DefaultRetryPolicy())
	c := pithos.New(*url, *account, *token, doer)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	res, err := c.Upload(ctx, *container, *object, f, opts)
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"object": *container + "/" + *object, "bytes": res.Bytes, "seconds": secs,
		"mb_per_s": float64(res.Bytes) / 1e6 / secs, "hash": res.Hash,
		"blocks_total": res.BlocksTotal, "blocks_missing": res.BlocksMissing,
		"blocks_sent": res.BlocksSent, "bytes_sent": res.BytesSent, "cache_hit": res.CacheHit,
	})
}

// sha256Rate is `sha256sum` with Go's crypto/sha256 (the implementation the
// upload engine uses): one goroutine reading the file in 4 MiB chunks.
func sha256Rate(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	start := time.Now()
	n, err := io.CopyBuffer(h, f, make([]byte, 4<<20))
	if err != nil {
		return err
	}
	sum := h.Sum(nil)
	secs := time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"bytes": n, "seconds": secs, "mb_per_s": float64(n) / 1e6 / secs, "sha256": hex.EncodeToString(sum),
	})
}

// singlePut is the wire limit of the upload engine: one request carrying the
// whole file over one connection, sent by Go's HTTP client (with
// sendfile(2) for a file body) and hashed and stored by the server, with
// none of the hashmap protocol's round trips.
func singlePut(base, account, token, container, object string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 5 * time.Minute}}
	do := func(method, path string, body io.Reader, size int64) error {
		req, err := http.NewRequest(method, strings.TrimRight(base, "/")+"/"+account+path, body)
		if err != nil {
			return err
		}
		req.Header.Set("X-Auth-Token", token)
		req.Header.Set("Content-Type", "application/octet-stream")
		req.ContentLength = size
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return nil
	}
	if err := do(http.MethodPut, "/"+container, nil, 0); err != nil {
		return err
	}
	start := time.Now()
	if err := do(http.MethodPut, "/"+container+"/"+object, f, fi.Size()); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"object": container + "/" + object, "bytes": fi.Size(), "seconds": secs,
		"mb_per_s": float64(fi.Size()) / 1e6 / secs,
	})
}
