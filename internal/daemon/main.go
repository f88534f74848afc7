package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/redisconn"
)

// MainOptions are syncd's command line.
type MainOptions struct {
	ConfigPath string
	ConfigSet  bool // --config was given: the file must exist
	Dev        bool
	// DevListen is where --dev serves its sandbox cloud; "" means
	// $SYNCD_DEV_LISTEN, else DevListen.
	DevListen string
	Stderr    io.Writer
	// Getenv reads the SYNCD_* overrides; nil means os.Getenv.
	Getenv func(string) string
}

// Main loads the configuration, sets up logging (and the dev cloud with
// --dev) and runs the daemon until ctx is done.
func Main(ctx context.Context, o MainOptions) error {
	cfg, err := LoadConfig(o)
	if err != nil {
		return err
	}
	var dc *DevCloud
	var base *config.Config // what the configuration file and environment said, before dev mode's own settings
	if o.Dev {
		listen := o.DevListen
		if listen == "" {
			listen = o.getenv()("SYNCD_DEV_LISTEN")
		}
		if listen == "" {
			listen = DevListen
		}
		dc, err = StartDevCloud(cfg.StateDir, listen)
		if err != nil {
			return err
		}
		defer dc.Close()
		base = cfg
		cfg = DevConfig(cfg, dc)
		for _, w := range cfg.Watch {
			if err := os.MkdirAll(w.Dir, 0o755); err != nil {
				return fmt.Errorf("dev: %w", err)
			}
		}
	}
	log, err := NewLogger(cfg.Log, o.Stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	redisconn.LogTo(log)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if cfg.Source == "" && !o.Dev {
		log.Warn("no configuration file found; using built-in defaults", zap.String("looked_for", o.ConfigPath))
	}
	return Run(ctx, Options{Config: cfg, Logger: log, Ready: func(info Info) {
		if dc == nil {
			return
		}
		// For syncctl, once Redis listens: with its real address, which
		// differs from embedded_listen when that asked for any port (":0").
		written := *cfg
		written.Redis.EmbeddedListen = info.RedisAddr
		if err := written.WriteDev(filepath.Join(cfg.StateDir, config.DevConfigFile), filepath.Join(cfg.StateDir, devTokenFile)); err != nil {
			log.Error("dev: cannot write the configuration syncctl reads", zap.Error(err))
		}
		printDevBanner(o.Stderr, cfg, dc, info, devSources(base, o.ConfigPath, cfg.StateDir))
	}})
}

// LoadConfig loads and checks syncd's configuration as Main would, for
// running (or `syncd config check`): every problem at once, by key path.
func LoadConfig(o MainOptions) (*config.Config, error) {
	use := config.ForDaemon
	if o.Dev {
		use = config.ForDev
	}
	cfg, err := config.LoadWith(o.ConfigPath, config.LoadOptions{AllowMissing: o.Dev || !o.ConfigSet, Getenv: o.getenv(), Use: use})
	var ve *config.ValidationError
	if errors.As(err, &ve) && ve.File == "" {
		return nil, fmt.Errorf("%w\n(no configuration file: %s does not exist, so these are the built-in defaults and SYNCD_* variables; pass --config FILE, or copy configs/syncd.example.yaml there)", err, o.ConfigPath)
	}
	return cfg, err
}

func (o MainOptions) getenv() func(string) string {
	if o.Getenv != nil {
		return o.Getenv
	}
	return os.Getenv
}

// NewLogger builds the zap logger: JSON for production, console for people.
func NewLogger(lc config.Log, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(lc.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level %q: %w", lc.Level, err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if lc.Format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		if colorTerminal(w) {
			encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level)), nil
}

// colorTerminal: colour codes only for a person at a terminal, never into
// a file, a pipe or a journal, and not when NO_COLOR is set (no-color.org).
func colorTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && os.Getenv("NO_COLOR") == "" && term.IsTerminal(int(f.Fd()))
}

// devSources says what dev mode took from where: the configuration file
// (if any) and the environment give the node, watch roots and tuning; the
// cloud, its token and the Redis are always dev mode's own.
func devSources(base *config.Config, path, stateDir string) string {
	tokenFile := filepath.Join(stateDir, devTokenFile)
	var b strings.Builder
	if base.Source != "" {
		fmt.Fprintf(&b, "  config        %s (node, watch roots, settle, upload; not its cloud, token or redis)\n", base.Source)
	} else {
		fmt.Fprintf(&b, "  config        none (%s does not exist): built-in defaults\n", path)
	}
	nodeFrom := base.Origin("node")
	if nodeFrom == "" {
		nodeFrom = "this host's name"
	}
	fmt.Fprintf(&b, "  node          %s  (from %s)\n", base.Node, nodeFrom)
	if len(base.Watch) > 0 {
		fmt.Fprintf(&b, "  watch roots   %d, from %s\n", len(base.Watch), base.Origin("watch"))
	} else {
		fmt.Fprintf(&b, "  watch roots   ./images (dev mode's default)\n")
	}
	ignored := ""
	switch {
	case base.Cloud.Token != "":
		ignored = fmt.Sprintf("; cloud.token (%s) is not used", base.Origin("cloud.token"))
	case base.Cloud.TokenFile != "":
		ignored = fmt.Sprintf("; cloud.token_file %s (%s) is not used", base.Cloud.TokenFile, base.Origin("cloud.token_file"))
	}
	fmt.Fprintf(&b, "  token         the sandbox user's, kept in %s%s\n", tokenFile, ignored)
	if base.Source != "" && filepath.Clean(base.Source) == filepath.Clean(config.DefaultPath) {
		dev := filepath.Join(stateDir, config.DevConfigFile)
		fmt.Fprintf(&b, "  syncctl       reads %s before this run's %s: use  syncctl --config %s\n", base.Source, dev, dev)
	}
	return b.String()
}

func printDevBanner(w io.Writer, cfg *config.Config, dc *DevCloud, info Info, sources string) {
	dir, _ := filepath.Abs(cfg.Watch[0].Dir)
	fmt.Fprintf(w, `
  imagesync dev mode is running
  ─────────────────────────────
%s`, sources)
	fmt.Fprintf(w, `  watching      %s  (drop *.diskdump files here; X.diskdump.meta and _template.meta set metadata)
  sandbox cloud %s   user %s, token %s
  redis         %s  (embedded; syncctl finds it with no config)
  metrics       http://%s/metrics

  try:  cp some.diskdump %s/
        go run ./cmd/syncctl status
        curl -s -H 'X-Auth-Token: %s' %s/image/v1.0/images/detail

`, dir, dc.URL, dc.User.Name, dc.User.Token, info.RedisAddr, info.HTTPAddr, dir, dc.User.Token, dc.URL)
}
