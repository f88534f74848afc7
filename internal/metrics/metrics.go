// Package metrics holds syncd's Prometheus metrics: job outcomes, bytes
// hashed and sent, blocks deduplicated, upload throughput and queue depth.
package metrics

import (
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one registry's worth of collectors. Create one per daemon (no
// package-level state), register it, pass it to the jobs.
type Metrics struct {
	Registry *prometheus.Registry

	JobsTotal        *prometheus.CounterVec   // type, outcome (ok, retry, archived, unauthorized)
	JobDuration      *prometheus.HistogramVec // type
	HopLatency       *prometheus.HistogramVec // from, to: a job's enqueue of the next → the next's start
	BytesHashed      prometheus.Counter
	BytesSent        prometheus.Counter
	BlocksSent       prometheus.Counter
	BlocksDeduped    prometheus.Counter
	BytesDeduped     prometheus.Counter
	UploadThroughput prometheus.Histogram // bytes/s of completed uploads (file size / duration)
	FilesSeen        prometheus.Gauge
	WatchErrors      prometheus.Counter
	AuthFailures     prometheus.Counter
	// QuotaUnreadable is 1 while the storage quota cannot be read, so
	// uploads go ahead without the pre-check.
	QuotaUnreadable prometheus.Gauge
	RedisFailovers  prometheus.Counter
}

// New creates the metrics, a registry with Go/process collectors, and a queue
// collector over insp (nil to skip).
func New(insp *asynq.Inspector) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		JobsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagesync_jobs_total", Help: "Jobs handled by this node, by type and outcome.",
		}, []string{"type", "outcome"}),
		JobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "imagesync_job_duration_seconds", Help: "Job handler duration.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, []string{"type"}),
		HopLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "imagesync_hop_latency_seconds",
			Help: "From a job queueing the next one (upload → register → publish) to that job's start.",
			// 1 ms to about 16 s: milliseconds when woken, about a second when found by the idle poll.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"from", "to"}),
		BytesHashed:   prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_bytes_hashed_total", Help: "Bytes read and hashed from image files."}),
		BytesSent:     prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_bytes_sent_total", Help: "Block bytes uploaded to Pithos+."}),
		BlocksSent:    prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_blocks_sent_total", Help: "Blocks uploaded to Pithos+."}),
		BlocksDeduped: prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_blocks_deduplicated_total", Help: "Blocks not sent because the server already had them."}),
		BytesDeduped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imagesync_bytes_deduplicated_total",
			Help: "Bytes of uploaded image files not sent because the server already had their blocks (or the file repeats them).",
		}),
		UploadThroughput: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imagesync_upload_throughput_bytes_per_second", Help: "Throughput of completed uploads (file size / duration).",
			Buckets: prometheus.ExponentialBuckets(1<<20, 2, 12),
		}),
		FilesSeen:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "imagesync_watch_images", Help: "Images under the watch roots at the last scan."}),
		WatchErrors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_watch_errors_total", Help: "Unreadable files and directories met by the watcher."}),
		AuthFailures:   prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_auth_failures_total", Help: "Requests the cloud answered with 401."}),
		RedisFailovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_redis_failovers_total", Help: "Redis master changes (Sentinel failovers, cluster slots taken over by a replica) seen while this syncd ran."}),
		QuotaUnreadable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "imagesync_quota_unreadable",
			Help: "1 while the storage quota cannot be read (uploads go ahead without the pre-check; the server's 413 still stops a full quota)."}),
	}
	reg.MustRegister(m.JobsTotal, m.JobDuration, m.HopLatency, m.BytesHashed, m.BytesSent, m.BlocksSent, m.BlocksDeduped, m.BytesDeduped,
		m.UploadThroughput, m.FilesSeen, m.WatchErrors, m.AuthFailures, m.QuotaUnreadable, m.RedisFailovers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if insp != nil {
		reg.MustRegister(&queueCollector{insp: insp})
	}
	return m
}

var (
	queueSizeDesc = prometheus.NewDesc("imagesync_queue_tasks", "Tasks in each queue by state.", []string{"queue", "state"}, nil)
	queueLatency  = prometheus.NewDesc("imagesync_queue_latency_seconds", "Age of the oldest pending task.", []string{"queue"}, nil)
	queuePaused   = prometheus.NewDesc("imagesync_queue_paused", "1 when the queue is paused (e.g. after a 401).", []string{"queue"}, nil)
)

// queueCollector reads queue depth from Redis at scrape time.
type queueCollector struct{ insp *asynq.Inspector }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueSizeDesc
	ch <- queueLatency
	ch <- queuePaused
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.insp.Queues()
	if err != nil {
		return
	}
	for _, q := range queues {
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			continue
		}
		for state, n := range map[string]int{
			"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed,
		} {
			ch <- prometheus.MustNewConstMetric(queueSizeDesc, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(queueLatency, prometheus.GaugeValue, info.Latency.Seconds(), q)
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(queuePaused, prometheus.GaugeValue, paused, q)
	}
}
