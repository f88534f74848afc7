package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key under dir and
// returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syncd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestMetricsEndpointServesTLSWithBasicAuth: with http.web_config_file (the
// exporter-toolkit format) the metrics and health endpoint speaks only TLS
// and answers only the configured user with the right password.
func TestMetricsEndpointServesTLSWithBasicAuth(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 4096})
	cfg := testConfig(t, cloud, filepath.Join(t.TempDir(), "images"))
	dir := t.TempDir()
	pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("right horse battery"), bcrypt.MinCost)
	require.NoError(t, err)
	webCfg := filepath.Join(dir, "web.yml")
	// Relative paths are the toolkit's: against the file's directory.
	require.NoError(t, os.WriteFile(webCfg, fmt.Appendf(nil,
		"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: %s\n", hash), 0o600))
	cfg.HTTP.WebConfigFile = webCfg
	require.NoError(t, cfg.Validate())
	info := runDaemon(t, cfg, nil)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(url, user, pass string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	base := "https://" + info.HTTPAddr
	code, body := get(base+"/metrics", "prometheus", "right horse battery")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "imagesync_")
	code, body = get(base+"/healthz", "prometheus", "right horse battery")
	assert.Equal(t, http.StatusOK, code, body)

	for _, c := range []struct{ user, pass string }{{"prometheus", "wrong"}, {"someone", "right horse battery"}, {"", ""}} {
		code, body := get(base+"/metrics", c.user, c.pass)
		assert.Equal(t, http.StatusUnauthorized, code, "user %q pass %q", c.user, c.pass)
		assert.NotContains(t, body, "imagesync_")
	}

	// Plain HTTP gets no metrics.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + info.HTTPAddr + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.NotEqual(t, http.StatusOK, resp.StatusCode)
		assert.NotContains(t, string(b), "imagesync_")
	}
}

// TestABadWebConfigStopsSyncdAtStart: a web config the toolkit cannot use
// is an error at start, not an endpoint that silently never answers.
func TestABadWebConfigStopsSyncdAtStart(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 4096})
	cfg := testConfig(t, cloud, filepath.Join(t.TempDir(), "images"))
	webCfg := filepath.Join(t.TempDir(), "web.yml")
	require.NoError(t, os.WriteFile(webCfg, []byte("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n"), 0o600))
	cfg.HTTP.WebConfigFile = webCfg
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, Options{Config: cfg, Logger: zap.NewNop()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "http.web_config_file "+webCfg)
}

// TestSecretFilesReadableByOthers: syncd warns at start about a token file
// or Redis password file that group or others can read, as ssh does for
// keys, and with strict_permissions refuses to start.
func TestSecretFilesReadableByOthers(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 4096})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(cloud.User.Token+"\n"), 0o600))
	require.NoError(t, os.Chmod(tokenFile, 0o644))
	pwFile := filepath.Join(dir, "redis-password")
	require.NoError(t, os.WriteFile(pwFile, []byte("\n"), 0o600))
	require.NoError(t, os.Chmod(pwFile, 0o640))

	cfg := testConfig(t, cloud, filepath.Join(t.TempDir(), "images"))
	cfg.Cloud.Token, cfg.Cloud.TokenFile = "", tokenFile
	cfg.Redis.PasswordFile = pwFile
	require.NoError(t, os.MkdirAll(cfg.StateDir, 0o755))
	require.NoError(t, os.Chmod(cfg.StateDir, 0o755))

	core, logs := observer.New(zap.WarnLevel)
	runDaemon(t, cfg, zap.New(core))
	var warned []string
	for _, e := range logs.All() {
		warned = append(warned, e.Message)
	}
	all := strings.Join(warned, "\n")
	assert.Contains(t, all, "cloud.token_file "+tokenFile+" is readable by group and others (mode 0644): chmod 600 it")
	assert.Contains(t, all, "redis.password_file "+pwFile+" is readable by its group (mode 0640)")
	assert.Contains(t, all, "state_dir "+cfg.StateDir+" is accessible by group or others (mode 0755)")
	assert.NotContains(t, all, cloud.User.Token)

	// strict_permissions: refuse to start, naming the file.
	strict := testConfig(t, cloud, filepath.Join(t.TempDir(), "images"))
	strict.Cloud.Token, strict.Cloud.TokenFile = "", tokenFile
	strict.StrictPermissions = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, Options{Config: strict, Logger: zap.NewNop()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cloud.token_file "+tokenFile+" is readable")
	assert.Contains(t, err.Error(), "strict_permissions")

	// Fixed: no warning, and strict starts.
	require.NoError(t, os.Chmod(tokenFile, 0o600))
	core, logs = observer.New(zap.WarnLevel)
	runDaemon(t, strict, zap.New(core))
	for _, e := range logs.All() {
		assert.NotContains(t, e.Message, "token_file")
	}
}

// TestStateIsPrivate: the state directory and the hashmap cache syncd
// creates are 0700, and cache entries 0600, whatever the umask.
func TestStateIsPrivate(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: 4096})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := testConfig(t, cloud, dir)
	writeRandom(t, filepath.Join(dir, "a.diskdump"), 20_000)
	runDaemon(t, cfg, nil)
	cache := filepath.Join(cfg.StateDir, "hashmaps")
	var entries []os.DirEntry
	eventually(t, 60*time.Second, "a hashmap cache entry", func() bool {
		entries, _ = os.ReadDir(cache)
		return len(entries) > 0
	})
	for _, p := range []string{cfg.StateDir, cache} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), p)
	}
	for _, e := range entries {
		st, err := os.Stat(filepath.Join(cache, e.Name()))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), e.Name())
	}
}
