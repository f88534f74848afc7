package metrics_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// repoFile is a path from the module root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", filepath.FromSlash(rel))
}

type dashboard struct {
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

var (
	metricRe   = regexp.MustCompile(`\bimagesync_[a-zA-Z0-9_]+`)
	selectorRe = regexp.MustCompile(`\b(imagesync_[a-zA-Z0-9_]+)\{([^}]*)\}`)
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	byRe       = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	sampleRe   = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? `)
	labelRe    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

// targetLabels are added by Prometheus when it scrapes, not by syncd.
var targetLabels = []string{"instance", "job"}

// TestGrafanaDashboardQueriesExist loads configs/grafana/imagesync.json and
// checks every series it queries, with every label it selects or groups
// by, against the /metrics of a daemon that has uploaded, registered and
// published an image: a renamed metric or label breaks this test, not the
// dashboard someone opens during an incident.
func TestGrafanaDashboardQueriesExist(t *testing.T) {
	b, err := os.ReadFile(repoFile(t, "configs/grafana/imagesync.json"))
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	require.Equal(t, "imagesync", d.UID)

	var exprs []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		assert.Equal(t, "${datasource}", p.Datasource.UID, "panel %q uses the dashboard's data source", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q queries something", p.Title)
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			exprs = append(exprs, v.Definition)
		}
	}
	for _, want := range []string{"imagesync_bytes_sent_total", "imagesync_queue_tasks", "imagesync_hop_latency_seconds_bucket",
		"imagesync_jobs_total", "imagesync_bytes_deduplicated_total"} {
		assert.True(t, slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, want) }),
			"the dashboard shows %s", want)
	}

	series := scrapeBusyDaemon(t)

	for _, e := range exprs {
		names := metricRe.FindAllString(e, -1)
		require.NotEmpty(t, names, "%s queries no imagesync metric", e)
		for _, n := range names {
			assert.Contains(t, series, n, "%s: no series %s in /metrics", e, n)
		}
		for _, m := range selectorRe.FindAllStringSubmatch(e, -1) {
			for _, l := range matcherRe.FindAllStringSubmatch(m[2], -1) {
				if !slices.Contains(targetLabels, l[1]) {
					assert.Contains(t, series[m[1]], l[1], "%s: %s has no label %s", e, m[1], l[1])
				}
			}
		}
		for _, by := range byRe.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(by[1], ",") {
				l = strings.TrimSpace(l)
				if l == "" || slices.Contains(targetLabels, l) {
					continue
				}
				assert.True(t, slices.ContainsFunc(names, func(n string) bool { return slices.Contains(series[n], l) }),
					"%s: groups by %s, which none of its metrics has", e, l)
			}
		}
	}
}

// scrapeBusyDaemon runs a daemon against a sandbox, pushes an image through
// upload, registration and publishing (so labelled metrics have series),
// and returns its /metrics as series name → label names.
func scrapeBusyDaemon(t *testing.T) map[string][]string {
	t.Helper()
	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: 4096})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	d := daemontest.Run(t, cfg, nil)
	daemontest.WriteRandom(t, filepath.Join(dir, "a.diskdump"), 64<<10)
	// 16 blocks of the same 4 KiB: one is sent, 60 KiB are saved.
	daemontest.WriteFile(t, filepath.Join(dir, "same.diskdump"), []byte(strings.Repeat("imagesync block ", 16*4096/16)))
	daemontest.WriteFile(t, filepath.Join(dir, "a.diskdump.meta"), []byte(`{"is_public": true}`))
	daemontest.Eventually(t, 60*time.Second, "the images published", func() bool {
		return len(daemontest.Tasks(t, d.Inspector(t), daemontest.StateCompleted)) >= 6
	})

	var body string
	daemontest.Eventually(t, 30*time.Second, "the hop latency recorded", func() bool {
		resp, err := http.Get("http://" + d.Info.HTTPAddr + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, "imagesync_hop_latency_seconds_bucket")
	})
	assert.Contains(t, body, "\nimagesync_bytes_deduplicated_total 61440\n", "15 repeated blocks of 4 KiB saved")
	series := map[string][]string{}
	for _, line := range strings.Split(body, "\n") {
		m := sampleRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := series[m[1]]
		for _, l := range labelRe.FindAllStringSubmatch(m[2], -1) {
			if !slices.Contains(labels, l[1]) {
				labels = append(labels, l[1])
			}
		}
		series[m[1]] = labels
	}
	return series
}

// The compose file's ui profile shows the same Redis and metrics.
func TestComposeUIProfile(t *testing.T) {
	b, err := os.ReadFile(repoFile(t, "docker-compose.yml"))
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Profiles []string `yaml:"profiles"`
			Image    string   `yaml:"image"`
			Command  []string `yaml:"command"`
			Volumes  []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &compose))
	mon, ok := compose.Services["asynqmon"]
	require.True(t, ok, "an asynqmon service")
	assert.Equal(t, []string{"ui"}, mon.Profiles)
	assert.Contains(t, mon.Command, "--redis-addr=redis:6379", "the Redis syncd uses (SYNCD_REDIS_ADDR=redis:6379)")
	for _, svc := range []string{"prometheus", "grafana"} {
		assert.Equal(t, []string{"ui"}, compose.Services[svc].Profiles, svc)
	}
	for _, v := range append(compose.Services["grafana"].Volumes, compose.Services["prometheus"].Volumes...) {
		src, _, _ := strings.Cut(v, ":")
		if strings.HasPrefix(src, "./") {
			_, err := os.Stat(repoFile(t, src))
			assert.NoError(t, err, "mounted %s", src)
		}
	}
	prom, err := os.ReadFile(repoFile(t, "configs/prometheus/prometheus.yml"))
	require.NoError(t, err)
	assert.Contains(t, string(prom), "syncd:9464")
}
