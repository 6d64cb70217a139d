package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/bundlestore"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

func gauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// alarmDaemon is a daemon with a store holding the example bundle, dated to
// expire at expires, read at the clock's time.
func alarmDaemon(t *testing.T, c *clock, expires time.Time, noWildcard bool) (*daemon, *audit.Memory) {
	t.Helper()
	data, err := os.ReadFile("../../examples/policy-bundle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.ParseBundle("example", data)
	if err != nil {
		t.Fatal(err)
	}
	b.Expires = expires
	if noWildcard { // only policies that name their clusters
		var ps []*policy.SecurityPolicy
		for _, p := range b.Policies {
			if p.Clusters[0] != policy.Wildcard {
				ps = append(ps, p)
			}
		}
		b.Policies = ps
	}
	if data, err = b.Marshal(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := bundlestore.NewStore(bundlestore.WithFileSource(path), bundlestore.WithClock(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	mem := &audit.Memory{}
	d := &daemon{log: slog.New(slog.DiscardHandler), audit: mem, metrics: newMetrics()}
	d.bundles.Store(st)
	return d, mem
}

func records(mem *audit.Memory, event string) []audit.Record {
	var out []audit.Record
	for _, r := range mem.Snapshot() {
		if r.Event == event {
			out = append(out, r)
		}
	}
	return out
}

// Freshness with a fake clock: one record per change, the gauges follow,
// and /readyz's detail says where the bundle stands.
func TestFreshnessAlarms(t *testing.T) {
	day0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	c := &clock{day0}
	d, mem := alarmDaemon(t, c, day0.Add(72*time.Hour), false)
	node := nodeconfig.Default()
	node.Cluster = "prod-1"

	for _, step := range []struct {
		at             time.Duration
		stale, expired float64
		records        int
		detail         string
	}{
		{0, 0, 0, 0, "fresh (expires 2026-11-29T00:00:00Z)"},
		{47 * time.Hour, 0, 0, 0, "fresh"},
		{49 * time.Hour, 1, 0, 1, "stale (expires 2026-11-29T00:00:00Z)"},
		{50 * time.Hour, 1, 0, 1, "stale"}, // no second record for the same state
		{72 * time.Hour, 1, 1, 2, "expired"},
		{90 * time.Hour, 1, 1, 2, "expired"},
	} {
		c.t = day0.Add(step.at)
		d.checkAlarms(node)
		if got := gauge(t, d.metrics.bundleStale); got != step.stale {
			t.Errorf("+%v: nri_csig_bundle_stale = %v; want %v", step.at, got, step.stale)
		}
		if got := gauge(t, d.metrics.bundleExpired); got != step.expired {
			t.Errorf("+%v: nri_csig_bundle_expired = %v; want %v", step.at, got, step.expired)
		}
		if got := len(records(mem, "freshness")); got != step.records {
			t.Errorf("+%v: %d freshness records; want %d: %+v", step.at, got, step.records, mem.Snapshot())
		}
		if got := d.readyDetail(); !strings.Contains(got, step.detail) {
			t.Errorf("+%v: /readyz detail %q; want %q", step.at, got, step.detail)
		}
	}
	recs := records(mem, "freshness")
	if recs[0].Decision != "stale" || recs[1].Decision != "expired" || !strings.Contains(recs[1].Reason, "keeps enforcing it") {
		t.Errorf("freshness records = %+v; want stale, then expired saying it stays in force", recs)
	}
	if got := gauge(t, d.metrics.bundleExpiry); got != float64(day0.Add(72*time.Hour).Unix()) {
		t.Errorf("nri_csig_bundle_expiry_timestamp_seconds = %v", got)
	}
	// The expired bundle is still the one in force.
	if b := d.bundles.Load().Current(); b == nil {
		t.Error("no bundle in force after expiry")
	}
}

// A cluster name no policy names is reported once per bundle, and the gauge
// says so while it lasts.
func TestClusterUncoveredAlarm(t *testing.T) {
	c := &clock{time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
	d, mem := alarmDaemon(t, c, time.Time{}, true)
	node := nodeconfig.Default()
	node.Cluster = "prod-1"
	d.checkAlarms(node)
	if n := len(records(mem, "cluster")); n != 0 || gauge(t, d.metrics.clusterUncovered) != 0 {
		t.Fatalf("cluster prod-1 is covered, yet %d records", n)
	}
	node.Cluster = "typo-cluster"
	d.checkAlarms(node)
	d.checkAlarms(node)
	recs := records(mem, "cluster")
	if len(recs) != 1 || recs[0].Decision != "uncovered" || !strings.Contains(recs[0].Reason, `cluster "typo-cluster" is named by no security policy`) {
		t.Errorf("records = %+v; want one uncovered record", recs)
	}
	if gauge(t, d.metrics.clusterUncovered) != 1 {
		t.Error("nri_csig_cluster_uncovered is not 1")
	}
}

func TestNeedsRestart(t *testing.T) {
	base := nodeconfig.Default()
	for name, tc := range map[string]struct {
		edit func(c *nodeconfig.Config)
		want string
	}{
		"cluster":            {edit: func(c *nodeconfig.Config) { c.Cluster = "other" }},
		"bundle":             {edit: func(c *nodeconfig.Config) { c.Bundle.File = "/b" }},
		"state dir":          {edit: func(c *nodeconfig.Config) { c.StateDir = "/elsewhere" }, want: "needs a restart: stateDir"},
		"registry off":       {edit: func(c *nodeconfig.Config) { c.Signatures.Registry = false }, want: "needs a restart: signatures.registry"},
		"signatures dir":     {edit: func(c *nodeconfig.Config) { c.Signatures.Dir = "/sigs" }, want: "needs a restart: signatures.dir"},
		"insecure registrys": {edit: func(c *nodeconfig.Config) { c.Signatures.InsecureRegistries = []string{"r:5000"} }, want: "needs a restart: signatures.insecureRegistries"},
		"credential providers": {edit: func(c *nodeconfig.Config) {
			c.Registries.CredentialProviders = nodeconfig.CredentialProviders{Config: "/etc/cp.yaml", BinDir: "/bin"}
		}, want: "needs a restart: registries.credentialProviders"},
	} {
		next := *base
		tc.edit(&next)
		err := needsRestart(base, &next)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: needsRestart = %v; want %q", name, err, tc.want)
		}
	}
}
