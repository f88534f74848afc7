package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/pithos"
)

// VerifyDoc is `verify --json`:
//
//	{ "path": "/abs/images/a.diskdump", "location": "pithos://<account>/images/a.diskdump",
//	  "image_id": "…" | "", "match": false,
//	  "bytes": 0, "local_bytes": 0, "block_size": 4194304, "blocks_total": 0,
//	  "hash": "<the server's Merkle hash>", "local_hash": "<the file's>" | "",
//	  "version": "…",
//	  "differing": [{"index": 3, "offset": 12582912, "length": 4194304}] }
//
// local_hash is "" when the sizes differ; differing lists the object's
// blocks the local file does not hold at their offset.
type VerifyDoc struct {
	Path        string      `json:"path"`
	Location    string      `json:"location"`
	ImageID     string      `json:"image_id"`
	Match       bool        `json:"match"`
	Bytes       int64       `json:"bytes"`
	LocalBytes  int64       `json:"local_bytes"`
	BlockSize   int64       `json:"block_size"`
	BlocksTotal int64       `json:"blocks_total"`
	Hash        string      `json:"hash"`
	LocalHash   string      `json:"local_hash"`
	Version     string      `json:"version"`
	Differing   []BlockSpan `json:"differing"`
}

// BlockSpan is one block of an object.
type BlockSpan struct {
	Index  int64 `json:"index"`
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// DownloadDoc is `download --json`:
//
//	{ "location": "pithos://…", "image_id": "…" | "", "dest": "/abs/dest",
//	  "bytes": 0, "hash": "<Merkle hash, checked>", "version": "…",
//	  "blocks_total": 0, "blocks_reused": 0, "blocks_fetched": 0,
//	  "bytes_fetched": 0, "seconds": 0.1 }
type DownloadDoc struct {
	Location      string  `json:"location"`
	ImageID       string  `json:"image_id"`
	Dest          string  `json:"dest"`
	Bytes         int64   `json:"bytes"`
	Hash          string  `json:"hash"`
	Version       string  `json:"version"`
	BlocksTotal   int64   `json:"blocks_total"`
	BlocksReused  int64   `json:"blocks_reused"`
	BlocksFetched int64   `json:"blocks_fetched"`
	BytesFetched  int64   `json:"bytes_fetched"`
	Seconds       float64 `json:"seconds"`
}

// session is the cloud session of this configuration (the token is read).
func (a *app) session(cmd *cobra.Command) (*config.Config, *cloud.Session, error) {
	cfg, err := a.secrets(cmd)
	if err != nil {
		return nil, nil, err
	}
	opts, err := cloudOptions(cfg.Cloud)
	if err != nil {
		return nil, nil, err
	}
	return cfg, cloud.New(opts), nil
}

// cloudState authenticates, with the hint a bad token deserves.
func (a *app) cloudState(cmd *cobra.Command) (*config.Config, *cloud.State, error) {
	cfg, s, err := a.session(cmd)
	if err != nil {
		return nil, nil, err
	}
	st, err := s.Get(cmd.Context())
	if err != nil {
		if jobs.Classify(err) == jobs.Unauthorized {
			return nil, nil, fmt.Errorf("%w (check cloud.token / cloud.token_file / SYNCD_TOKEN)", err)
		}
		return nil, nil, err
	}
	return cfg, st, nil
}

// target is an object to verify or download, and the image registered on
// it when it was named by one.
type target struct {
	loc     location.Location
	imageID string
}

// resolveTarget reads IMAGE|LOCATION: a location ("pithos://acct/c/o",
// "/c/o"), or the id or the exact name of an image the user can see.
func resolveTarget(cmd *cobra.Command, st *cloud.State, arg string) (target, error) {
	if strings.HasPrefix(arg, "pithos://") || strings.HasPrefix(arg, "/") {
		loc, err := location.Parse(arg)
		if err != nil {
			return target{}, err
		}
		if loc.Account == "" {
			loc.Account = st.UserUUID
		}
		return target{loc: loc}, nil
	}
	imgs, err := st.Images.ListDetail(cmd.Context())
	if err != nil {
		return target{}, err
	}
	var byName []*image.Image
	for _, img := range imgs {
		if img.ID == arg {
			byName = []*image.Image{img}
			break
		}
		if img.Name == arg {
			byName = append(byName, img)
		}
	}
	switch len(byName) {
	case 0:
		return target{}, fmt.Errorf("no image with id or name %q (give a location such as /container/object instead)", arg)
	case 1:
	default:
		var ids []string
		for _, img := range byName {
			ids = append(ids, img.ID)
		}
		return target{}, fmt.Errorf("%d images are called %q: name one by id (%s)", len(byName), arg, strings.Join(ids, ", "))
	}
	loc, err := location.Parse(byName[0].Location)
	if err != nil {
		return target{}, fmt.Errorf("image %s: %w", byName[0].ID, err)
	}
	return target{loc: loc, imageID: byName[0].ID}, nil
}

// pithosFor is the user's Pithos client, for the location's account.
func pithosFor(st *cloud.State, loc location.Location) *pithos.Client {
	if loc.Account != "" && loc.Account != st.UserUUID {
		return st.Pithos.ForAccount(loc.Account)
	}
	return st.Pithos
}

// localFor maps one of the user's objects back to the file under a watch
// root it was uploaded from.
func localFor(cfg *config.Config, st *cloud.State, loc location.Location) (string, error) {
	if loc.Account != st.UserUUID {
		return "", fmt.Errorf("%s belongs to another account: no local file of yours is uploaded there", loc)
	}
	for _, w := range cfg.Watch {
		if w.Container != loc.Container {
			continue
		}
		rel := loc.Object
		if prefix := strings.Trim(w.Prefix, "/"); prefix != "" {
			var ok bool
			if rel, ok = strings.CutPrefix(loc.Object, prefix+"/"); !ok {
				continue
			}
		}
		p := filepath.Join(w.Dir, filepath.FromSlash(rel))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no file under the watch roots (%s) is uploaded to %s", watchDirs(cfg), loc)
}

func watchDirs(cfg *config.Config) string {
	var dirs []string
	for _, w := range cfg.Watch {
		dirs = append(dirs, w.Dir)
	}
	return strings.Join(dirs, ", ")
}

func (a *app) verifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify PATH|IMAGE",
		Short: "Compare a local image file with the object in the cloud, block by block",
		Long: `Read the object's hashmap from Pithos+, hash the local file in the object's
block size, and report the blocks that differ. PATH is an image file under a
watch root (compared with the object it uploads to); IMAGE is an image id or
name, or a location (pithos://account/container/object or /container/object),
compared with the file under the watch roots it was uploaded from. No data is
transferred. Exit status 1 when the file and the object differ.`,
		Example: "  syncctl verify images/debian-12.diskdump\n  syncctl verify /images/debian-12.diskdump --json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("verify needs one PATH or IMAGE")
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			cfg, st, err := a.cloudState(cmd)
			if err != nil {
				return err
			}
			var tgt target
			localPath := ""
			if fi, serr := os.Stat(args[0]); serr == nil && fi.Mode().IsRegular() {
				f, err := jobs.StatImage(cfg.Watch, args[0])
				if err != nil {
					return err
				}
				ref, err := jobs.NewCatalog(cfg.Watch, cfg.Node).Ref(f.Root, f.RelPath)
				if err != nil {
					return err
				}
				localPath = f.AbsPath
				tgt.loc = location.Location{Account: st.UserUUID, Container: ref.Container, Object: ref.Object}
			} else {
				if tgt, err = resolveTarget(cmd, st, args[0]); err != nil {
					return err
				}
				if localPath, err = localFor(cfg, st, tgt.loc); err != nil {
					return err
				}
			}
			file, err := os.Open(localPath)
			if err != nil {
				return err
			}
			defer file.Close()
			fi, err := file.Stat()
			if err != nil {
				return err
			}
			bar := a.progressBar("verifying")
			res, err := pithosFor(st, tgt.loc).Verify(cmd.Context(), tgt.loc.Container, tgt.loc.Object, file, fi.Size(),
				pithos.DownloadOptions{Progress: bar.update})
			bar.done()
			if err != nil {
				return err
			}
			abs, _ := filepath.Abs(localPath)
			doc := VerifyDoc{Path: abs, Location: tgt.loc.String(), ImageID: tgt.imageID, Match: res.Match(),
				Bytes: res.Bytes, LocalBytes: res.LocalBytes, BlockSize: res.BlockSize, BlocksTotal: res.BlocksTotal,
				Hash: res.Hash, LocalHash: res.LocalHash, Version: res.Version, Differing: []BlockSpan{}}
			for _, i := range res.Differing {
				doc.Differing = append(doc.Differing, BlockSpan{Index: i, Offset: i * res.BlockSize, Length: min(res.BlockSize, res.Bytes-i*res.BlockSize)})
			}
			if a.jsonOut {
				err = a.emitJSON(doc)
			} else {
				err = a.writeOut(renderVerify(doc))
			}
			if err != nil {
				return err
			}
			if !doc.Match {
				return failed(nil)
			}
			return nil
		}),
	}
}

func renderVerify(d VerifyDoc) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s\n  vs %s (version %s)\n", escapeText(d.Path), escapeText(d.Location), escapeText(d.Version))
	if d.Match {
		fmt.Fprintf(&buf, "MATCH: %s in %d block(s) of %s, hash %s\n", bytesHuman(d.Bytes), d.BlocksTotal, bytesHuman(d.BlockSize), d.Hash)
		return buf.Bytes()
	}
	fmt.Fprintf(&buf, "DIFFERS: %d of %d block(s) differ", len(d.Differing), d.BlocksTotal)
	if d.LocalBytes != d.Bytes {
		fmt.Fprintf(&buf, "; the local file has %d bytes, the object %d", d.LocalBytes, d.Bytes)
	}
	fmt.Fprintf(&buf, "\n  server hash %s\n  local hash  %s\n", d.Hash, orDash(d.LocalHash))
	if len(d.Differing) > 0 {
		const shown = 20
		t := newTable(&buf, "  BLOCK", "OFFSET", "LENGTH")
		for _, s := range d.Differing[:min(shown, len(d.Differing))] {
			t.row(fmt.Sprintf("  %d", s.Index), fmt.Sprint(s.Offset), fmt.Sprint(s.Length))
		}
		t.flush()
		if len(d.Differing) > shown {
			fmt.Fprintf(&buf, "  … and %d more (--json lists them all)\n", len(d.Differing)-shown)
		}
	}
	return buf.Bytes()
}

func (a *app) downloadCommand() *cobra.Command {
	var noResume bool
	cmd := &cobra.Command{
		Use:   "download IMAGE|LOCATION DEST",
		Short: "Fetch an image's file from the cloud, resuming and checking every block",
		Long: `Download the object behind IMAGE (an image id or name) or LOCATION
(pithos://account/container/object or /container/object) into DEST, a file or
a directory. It reads the object's hashmap, checks that its Merkle root is
the object's hash, keeps the blocks DEST already holds (an interrupted
download resumes; an up-to-date DEST costs no data), fetches each missing
distinct block once, and checks each block's hash before writing it. A new
DEST is written as DEST.part and renamed when complete. A progress bar is
drawn on a terminal.`,
		Example: "  syncctl download debian-12 /var/tmp/debian-12.diskdump\n  syncctl download /images/debian-12.diskdump .",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageErr("download needs IMAGE|LOCATION and DEST")
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			cfg, st, err := a.cloudState(cmd)
			if err != nil {
				return err
			}
			tgt, err := resolveTarget(cmd, st, args[0])
			if err != nil {
				return err
			}
			dest := args[1]
			if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
				dest = filepath.Join(dest, path.Base(tgt.loc.Object))
			}
			// An existing file is brought up to date in place; a new one is
			// written beside it and renamed once whole, so DEST is never a
			// partial image. An earlier interrupted download resumes.
			work := dest
			if _, err := os.Stat(dest); errors.Is(err, fs.ErrNotExist) {
				work = dest + ".part"
			}
			f, err := os.OpenFile(work, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			bar := a.progressBar("downloading")
			res, err := pithosFor(st, tgt.loc).Download(cmd.Context(), tgt.loc.Container, tgt.loc.Object, f,
				pithos.DownloadOptions{NoResume: noResume, BlockConcurrency: cfg.Upload.Blocks, Progress: bar.update})
			bar.done()
			if cerr := f.Close(); err == nil && cerr != nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%w (run the same command again to resume)", err)
			}
			if work != dest {
				if err := os.Rename(work, dest); err != nil {
					return err
				}
			}
			abs, _ := filepath.Abs(dest)
			doc := DownloadDoc{Location: tgt.loc.String(), ImageID: tgt.imageID, Dest: abs, Bytes: res.Bytes, Hash: res.Hash,
				Version: res.Version, BlocksTotal: res.BlocksTotal, BlocksReused: res.BlocksReused,
				BlocksFetched: res.BlocksFetched, BytesFetched: res.BytesFetched, Seconds: res.Duration.Seconds()}
			if a.jsonOut {
				return a.emitJSON(doc)
			}
			return a.writeOut(renderDownload(doc))
		}),
	}
	cmd.Flags().BoolVar(&noResume, "no-resume", false, "fetch every block even if DEST already holds it")
	return cmd
}

func renderDownload(d DownloadDoc) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s → %s\n", escapeText(d.Location), escapeText(d.Dest))
	fmt.Fprintf(&buf, "%s in %d block(s): %d fetched (%s), %d already in place, the rest empty; %s\n",
		bytesHuman(d.Bytes), d.BlocksTotal, d.BlocksFetched, bytesHuman(d.BytesFetched), d.BlocksReused,
		durHuman(time.Duration(d.Seconds*float64(time.Second))))
	fmt.Fprintf(&buf, "hash %s: every block and the Merkle root checked\n", d.Hash)
	return buf.Bytes()
}
