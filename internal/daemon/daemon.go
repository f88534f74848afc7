// Package daemon wires syncd together: configuration, Redis (embedded or
// real), the cloud session, the asynq workers, the folder watcher, the
// republish schedule and the metrics/health HTTP server.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/cloud"
	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/inspect"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/metrics"
	"github.com/imagesync/imagesync/internal/nodes"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/redisconn"
	"github.com/imagesync/imagesync/internal/watch"
)

// Options for Run.
type Options struct {
	Config *config.Config
	Logger *zap.Logger
	// ShutdownTimeout is how long running jobs get to finish on shutdown
	// before they are cancelled and put back on the queue (uploads resume
	// where they stopped).
	ShutdownTimeout time.Duration
	// Ready, if set, is called once everything is up.
	Ready func(Info)
	// AuthRecheck is how often cloud.token_file is read again while the
	// queues are paused after a 401 (default 10s).
	AuthRecheck time.Duration
}

// Info describes a running daemon.
type Info struct {
	RedisAddr string
	HTTPAddr  string
	Node      string
}

// Run runs syncd until ctx is done.
func Run(ctx context.Context, opts Options) error {
	cfg, log := opts.Config, opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	if err := checkFilesAtRest(cfg, log); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state_dir %s: %w", cfg.StateDir, err)
	}
	if err := cfg.ResolveSecrets(); err != nil {
		return err
	}

	conn, err := redisconn.Serve(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer conn.Close()
	if conn.IsEmbedded() {
		log.Info("embedded Redis started (non-durable: the queue is rebuilt from the watched folders at start)", zap.String("addr", conn.Addr))
	} else {
		fields := []zap.Field{zap.String("addr", conn.Addr), zap.String("mode", string(conn.Mode))}
		if master, err := conn.MasterAddr(ctx); err == nil && master != "" {
			fields = append(fields, zap.String("master", master))
		}
		log.Info("connected to Redis", fields...)
	}

	enq := jobs.NewEnqueuer(conn.Client, cfg.Node)
	// Hops between jobs in milliseconds without polling Redis hard at idle.
	enq.Waker = jobs.NewQueueWaker(jobs.DefaultIdlePoll)
	m := metrics.New(enq.Inspector())
	copts, err := cloud.FromConfig(cfg.Cloud)
	if err != nil {
		return err
	}
	copts.MaxConns, copts.Logger = cfg.Upload.Files*cfg.Upload.Blocks+8, log
	session := cloud.New(copts)
	cache, err := pithos.OpenHashmapCache(filepath.Join(cfg.StateDir, "hashmaps"))
	if err != nil {
		return fmt.Errorf("hashmap cache: %w", err)
	}
	detector, err := inspect.NewDetector(filepath.Join(cfg.StateDir, "inspect"), inspect.Limits{})
	if err != nil {
		return fmt.Errorf("inspection cache: %w", err)
	}
	catalog := jobs.NewCatalog(cfg.Watch, cfg.Node)
	loc, err := cfg.Schedule.Location()
	if err != nil {
		return fmt.Errorf("schedule.timezone: %w", err)
	}
	// This node's own queues first (only it can run their jobs), then the
	// ones every node serves (see the queue table in jobs/tasks.go).
	ownQueues := []string{jobs.UploadQueue(cfg.Node), jobs.NodeQueue(cfg.Node)}
	uploadQueues := map[string]int{jobs.UploadQueue(cfg.Node): 2, jobs.QueueSharedUpload: 1}
	generalQueues := map[string]int{jobs.NodeQueue(cfg.Node): 2, jobs.QueueDefault: 1}
	anyNodeQueues := []string{jobs.QueueSharedUpload, jobs.QueueDefault}
	allQueues := append(slices.Clone(ownQueues), anyNodeQueues...)
	if err := enq.RegisterQueues(ctx, allQueues...); err != nil {
		log.Warn("cannot list this node's queues for syncctl; they appear with their first task", zap.Error(err))
	}
	var authBroken atomic.Bool
	recovery := &authRecovery{session: session, every: cmp.Or(opts.AuthRecheck, authRecheck), log: log, cleared: func() { authBroken.Store(false) }}
	gate := jobs.NewAuthGate(conn.Client, enq.Inspector(), allQueues, log, func() {
		authBroken.Store(true)
		m.AuthFailures.Inc()
		session.Invalidate()
		recovery.start(ctx)
	})
	recovery.gate = gate
	worker := jobs.NewWorker(jobs.Deps{
		Session: session, Catalog: catalog, Enqueuer: enq, Cache: cache, Metrics: m, Log: log, Gate: gate, Redis: conn.Client,
		Blocks: cfg.Upload.Blocks, HashWorkers: cfg.Upload.HashWorkers, Detector: detector,
		Nodes: func(ctx context.Context) ([]string, error) { return nodes.Names(ctx, conn.Client, enq.Inspector()) },
	})

	// Two servers so that long uploads never starve registration/publishing.
	base := func() context.Context { return context.WithoutCancel(ctx) }
	serverCfg := func(concurrency int, queues map[string]int) asynq.Config {
		return asynq.Config{
			Concurrency: concurrency, Queues: queues, BaseContext: base, TaskCheckInterval: jobs.WakePollInterval,
			RetryDelayFunc: jobs.RetryDelay, IsFailure: jobs.IsFailure,
			ShutdownTimeout: opts.ShutdownTimeout, Logger: asynqLogger{log.Named("asynq")}, LogLevel: asynq.WarnLevel,
			HealthCheckFunc: func(err error) {
				if err != nil {
					log.Warn("redis health check failed", zap.Error(err))
				}
			},
		}
	}
	// A syncd of this host killed mid-job left its tasks "active": make them
	// runnable now rather than after asynq's lease recovery (up to 2 min).
	if n, err := jobs.ReclaimOrphans(ctx, conn.Client, enq.Inspector(), ownQueues...); err != nil {
		log.Warn("cannot reclaim the tasks of a crashed syncd; asynq recovers them within two minutes", zap.Error(err))
	} else if n > 0 {
		log.Info("reclaimed the tasks a crashed syncd on this host left running; they resume now", zap.Int("tasks", n))
	}
	uploads := asynq.NewServerFromRedisClient(enq.Waker.Client(conn.Client), serverCfg(cfg.Upload.Files, uploadQueues))
	general := asynq.NewServerFromRedisClient(enq.Waker.Client(conn.Client), serverCfg(4, generalQueues))
	if err := uploads.Start(worker.Handler()); err != nil {
		return fmt.Errorf("start upload workers: %w", err)
	}
	defer uploads.Shutdown()
	if err := general.Start(worker.Handler()); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	defer general.Shutdown()

	// Check the token now, so a bad one is reported at start, not per job.
	if _, err := session.Get(ctx); err != nil {
		if jobs.Classify(err) == jobs.Unauthorized {
			gate.Trip(ctx, err)
			// Paused by an earlier run too: Trip did nothing then.
			authBroken.Store(true)
			recovery.start(ctx)
		} else {
			log.Warn("cloud not reachable yet; jobs will retry", zap.Error(err))
		}
	} else if err := gate.Clear(ctx); err != nil {
		log.Warn("cannot clear the auth pause", zap.Error(err))
	}

	roots := jobs.WatchRoots(cfg.Watch)
	rescan := cfg.Rescan.D()
	if rescan == 0 {
		rescan = -1
	}
	watcher, err := watch.New(watch.Options{Roots: roots, Settle: cfg.Settle.D(), Rescan: rescan, Logger: log.Named("watch")})
	if err != nil {
		return fmt.Errorf("watcher: %w", err)
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var ready atomic.Bool
	wg.Add(4)
	go func() {
		defer wg.Done()
		nodes.Heartbeat(runCtx, conn.Client, nodes.Record{
			Node: cfg.Node, Host: hostname(), PID: os.Getpid(), StartedAt: time.Now().UTC(),
			Roots: nodes.RootsOf(cfg.Watch), Queues: allQueues, Republish: cfg.Schedule.Republish, Timezone: loc.String(),
		}, nodes.HeartbeatInterval, log)
	}()
	go func() {
		defer wg.Done()
		requeueAbandoned(runCtx, conn, enq.Inspector(), anyNodeQueues, log)
	}()
	go func() {
		defer wg.Done()
		if err := watcher.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("watcher stopped", zap.Error(err))
		}
	}()
	d := &dispatcher{cfg: cfg, enq: enq, catalog: catalog, log: log, metrics: m, watcher: watcher,
		skipped: jobs.NewSkipped(conn.Client, cfg.Node, skippedTTL(cfg.Rescan.D())),
		queues:  allQueues, failedOver: make(chan struct{}, 1), recoverySweepDelay: recoverySweepDelay,
		sweep: func(ctx context.Context) error {
			_, err := jobs.Sweep(ctx, jobs.SweepDeps{Catalog: catalog, Session: session, Enqueuer: enq, Redis: conn.Client, Log: log.Named("recovery")}, jobs.SweepOptions{})
			return err
		}}
	go func() {
		defer wg.Done()
		d.run(runCtx, watcher.Events(), func() { ready.Store(true) })
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn.WatchFailovers(runCtx, time.Second, func(f redisconn.Failover) {
			log.Warn("Redis failover: a replica took over from a lost master; syncd follows it and re-checks the watched folders for work the old master may have lost",
				zap.String("master_name", f.Master), zap.String("old_master", f.Old), zap.String("new_master", f.New))
			m.RedisFailovers.Inc()
			d.failover()
		})
	}()

	sched, err := startSchedule(runCtx, cfg.Schedule.Republish, loc, catalog, enq, log)
	if err != nil {
		return err
	}
	defer sched.Stop()

	httpSrv, httpAddr, err := serveHTTP(cfg.HTTP, m, conn, &ready, &authBroken, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(sctx)
	}()

	log.Info("syncd running", zap.String("node", cfg.Node), zap.Int("watch_roots", len(cfg.Watch)), zap.Strings("queues", allQueues),
		zap.String("metrics", "http://"+httpAddr+"/metrics"))
	if opts.Ready != nil {
		opts.Ready(Info{RedisAddr: conn.Addr, HTTPAddr: httpAddr, Node: cfg.Node})
	}

	<-ctx.Done()
	log.Info("shutting down: letting running jobs finish or requeueing them", zap.Duration("timeout", opts.ShutdownTimeout))
	stop()
	uploads.Stop()
	general.Stop()
	wg.Wait()
	return nil
}

// requeueAbandoned puts back, every few seconds, the tasks of the queues
// every node serves that a syncd which died (on any host) left running, so
// that another node takes them within seconds (jobs.RequeueAbandoned).
func requeueAbandoned(ctx context.Context, conn *redisconn.Conn, insp *asynq.Inspector, queues []string, log *zap.Logger) {
	t := time.NewTicker(abandonedCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := jobs.RequeueAbandoned(ctx, conn.Client, insp, queues, abandonedAfter)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Debug("cannot check for tasks a dead syncd left running", zap.Error(err))
		case n > 0:
			log.Info("put back tasks a syncd that stopped heartbeating left running; another node runs them now", zap.Int("tasks", n))
		}
	}
}

// A live worker extends its tasks' leases every 5 s: a lease left alone
// for abandonedAfter is a dead worker's.
const (
	abandonedCheckInterval = 5 * time.Second
	abandonedAfter         = 15 * time.Second
)

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

func serveHTTP(hc config.HTTP, m *metrics.Metrics, conn *redisconn.Conn, ready, authBroken *atomic.Bool, log *zap.Logger) (*http.Server, string, error) {
	listen := hc.Listen
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := conn.Client.Ping(r.Context()).Err(); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case authBroken.Load():
			http.Error(w, "the cloud rejected the token: queues paused", http.StatusServiceUnavailable)
		case !ready.Load():
			http.Error(w, "initial scan in progress", http.StatusServiceUnavailable)
		case conn.Client.Ping(r.Context()).Err() != nil:
			http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
		default:
			_, _ = fmt.Fprintln(w, "ready")
		}
	})
	if listen == "" || listen == "off" {
		return &http.Server{}, "", nil
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, "", fmt.Errorf("http.listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serve, err := httpServe(hc, ln, log)
	if err != nil {
		ln.Close()
		return nil, "", err
	}
	go func() {
		if err := serve(srv); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", zap.Error(err))
		}
	}()
	return srv, ln.Addr().String(), nil
}

// skippedTTL lets the skipped-files record of a node that stopped expire
// after a few rescans it did not run (never, with periodic rescans off).
func skippedTTL(rescan time.Duration) time.Duration {
	if rescan <= 0 {
		return 0
	}
	return max(5*rescan, 10*time.Minute)
}

// asynqLogger routes asynq's logs through zap.
type asynqLogger struct{ l *zap.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Sugar().Debug(args...) }
func (a asynqLogger) Info(args ...any)  { a.l.Sugar().Info(args...) }
func (a asynqLogger) Warn(args ...any)  { a.l.Sugar().Warn(args...) }
func (a asynqLogger) Error(args ...any) { a.l.Sugar().Error(args...) }
func (a asynqLogger) Fatal(args ...any) { a.l.Sugar().Error(args...) }
