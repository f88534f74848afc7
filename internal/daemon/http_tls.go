package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/exporter-toolkit/web"
	"go.uber.org/zap"
	"go.uber.org/zap/zapio"

	"github.com/imagesync/imagesync/internal/config"
)

// httpServe returns how the metrics and health listener serves: plain HTTP
// (the default, for loopback), or, with http.web_config_file, through
// Prometheus's exporter-toolkit, which reads the file (TLS, basic auth with
// bcrypt hashes, headers) the way every Prometheus exporter does. The file
// is checked now, so a mistake stops syncd at start rather than leaving the
// endpoint unreachable; the toolkit re-reads it for new connections, so
// certificates and passwords can be rotated without a restart.
func httpServe(hc config.HTTP, ln net.Listener, log *zap.Logger) (func(*http.Server) error, error) {
	if hc.WebConfigFile == "" {
		if !isLoopback(ln.Addr()) {
			log.Warn("the metrics and health endpoint listens beyond loopback without TLS or authentication; set http.web_config_file",
				zap.String("listen", ln.Addr().String()))
		}
		return func(s *http.Server) error { return s.Serve(ln) }, nil
	}
	if err := web.Validate(hc.WebConfigFile); err != nil {
		return nil, fmt.Errorf("http.web_config_file %s: %w", hc.WebConfigFile, err)
	}
	path := hc.WebConfigFile
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // the toolkit resolves the file's relative paths against its directory
	}
	flags := &web.FlagConfig{WebConfigFile: &path}
	// The toolkit logs with slog; its few lines (TLS on, handshake errors)
	// go to syncd's log as messages of the "http" logger.
	slogger := slog.New(slog.NewTextHandler(&zapio.Writer{Log: log.Named("http"), Level: zap.InfoLevel}, nil))
	return func(s *http.Server) error { return web.Serve(ln, s, flags, slogger) }, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// checkFilesAtRest warns about files holding secrets that group or others
// can read (config.SecretFiles; an error with strict_permissions), about a
// state directory others can look into, and about drop folders through
// which others could hard-link files syncd can read (hardlinkWarnings).
func checkFilesAtRest(cfg *config.Config, log *zap.Logger) error {
	warnings, err := cfg.SecretFiles()
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	if st, err := os.Stat(cfg.StateDir); err == nil {
		if w := config.StateDirWarning(cfg.StateDir, st); w != "" {
			log.Warn(w)
		}
	}
	for _, w := range hardlinkWarnings(cfg.Watch, os.ReadFile) {
		log.Warn(w)
	}
	return nil
}
