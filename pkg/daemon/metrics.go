package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// metrics are the daemon's Prometheus metrics, on their own registry so that
// only nri-csig's series (and Go's) are exported.
type metrics struct {
	alarmGauges
	reg          *prometheus.Registry
	decisions    *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	untrusted    prometheus.Counter
	bundleSerial prometheus.Gauge
	reloadOK     prometheus.Gauge
	reloads      *prometheus.CounterVec
	connected    prometheus.Gauge
	// registryErrors counts failed signature discoveries.
	registryErrors prometheus.Counter
	// persistErrors counts signatures verified but not written to the
	// state directory (read-only, full).
	persistErrors prometheus.Counter
	// partialDiscoveries counts discoveries that kept what they read while a part failed.
	partialDiscoveries prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nri_csig_decisions_total",
			Help: "Decisions by phase (create = a container being created, running = judged again), result and the kind of rule that decided (policy.RuleKind: allowlist, policy, exemption, ...).",
		}, []string{"event", "decision", "rule"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nri_csig_decision_duration_seconds",
			Help:    "Time to decide on one container, by phase and whether signatures had to be fetched (cache miss).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}, []string{"event", "cache"}),
		untrusted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nri_csig_running_untrusted_total",
			Help: "Running containers found untrusted when judged again (reconnection, bundle change, containers outside the CRI).",
		}),
		bundleSerial: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nri_csig_bundle_serial",
			Help: "Serial of the policy bundle in force (0: none).",
		}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nri_csig_bundle_last_reload_success",
			Help: "1 when the last policy bundle or node config reload was accepted, 0 when it was refused.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nri_csig_bundle_reloads_total",
			Help: "Policy bundle and node config reloads by result (accepted, refused).",
		}, []string{"result"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nri_csig_nri_registered",
			Help: "1 while the plugin is registered with containerd's NRI.",
		}),
	}
	m.registryErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nri_csig_signature_fetch_errors_total",
		Help: "Signature discoveries that failed (registry unreachable, refused, unauthorized).",
	})
	m.partialDiscoveries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nri_csig_signature_discovery_partial_total",
		Help: "Signature discoveries that kept the signatures read while a part failed (referrers API, one referrer, a layer, an oversized answer).",
	})
	m.persistErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nri_csig_signature_persist_errors_total",
		Help: "Verified signatures that could not be kept in the state directory (read-only or full); they still count until a restart.",
	})
	m.reg.MustRegister(m.persistErrors, m.registryErrors, m.partialDiscoveries, m.decisions, m.latency, m.untrusted, m.bundleSerial, m.reloadOK, m.reloads, m.connected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reloadOK.Set(1)
	m.alarmGauges = newAlarmGauges(m.reg)
	return m
}

// observe counts one decision.
func (m *metrics) observe(event string, v policy.Verdict, took time.Duration) {
	if event == "validate" {
		return // counted once, at create
	}
	m.decisions.WithLabelValues(event, string(v.Decision), string(v.Kind)).Inc()
	cache := "hit"
	if v.Fetched {
		cache = "miss"
	}
	m.latency.WithLabelValues(event, cache).Observe(took.Seconds())
}

// serve exposes /metrics and /readyz (200 only while registered with NRI;
// detail adds a line on the bundle in force), and with debugPprof Go's
// runtime profiles under /debug/pprof/. onError hears why the server
// stopped, unless it was closed.
func (m *metrics) serve(addr string, debugPprof bool, ready func() bool, detail func() string, onError func(error)) (*http.Server, net.Addr, error) {
	mux := http.NewServeMux()
	// Uncompressed: a gzip writer is about 1 MiB of heap per scrape, kept
	// in a pool between scrapes, for a few KiB of text read on loopback.
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{DisableCompression: true}))
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready() {
			m.connected.Set(1)
			fmt.Fprintf(w, "ok: registered with NRI\n%s\n", detail())
			return
		}
		m.connected.Set(0)
		http.Error(w, "not registered with NRI\n"+detail(), http.StatusServiceUnavailable)
	})
	if debugPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			onError(err)
		}
	}()
	return srv, ln.Addr(), nil
}

// watchStore exports how many image digests the signature store holds.
func (m *metrics) watchStore(s interface{ Len() int }) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nri_csig_signature_cache_entries",
		Help: "Image digests whose signatures the node holds (verified or not).",
	}, func() float64 { return float64(s.Len()) }))
}

// watchImages exports what the image index skipped: image records and
// descriptors that could not be used (too large, garbled, not matching their
// digest), each counted once while it stays on the node.
func (m *metrics) watchImages(x interface{ Skipped() uint64 }) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "nri_csig_image_records_skipped_total",
		Help: "Image records, descriptors and configs the image index skipped because they could not be used; only containers of those images are affected (see the log: grep imagestore: skipped).",
	}, func() float64 { return float64(x.Skipped()) }))
}

// watchWatcher exports what the containerd watcher could not act on: events
// it could not decode and containers it left unjudged (each is also logged).
func (m *metrics) watchWatcher(w interface{ Dropped() uint64 }) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "nri_csig_watch_dropped_total",
		Help: "Containerd events the watcher could not decode and containers outside NRI it left unjudged (see the log: WARN lines of the watcher).",
	}, func() float64 { return float64(w.Dropped()) }))
}
