package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/bundlestore"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// alarmState remembers what the daemon last reported about the bundle in
// force, so that each change is one audit record and one log line, not one
// per check. Guarded by daemon.mu.
type alarmState struct {
	freshness policy.Freshness
	serial    uint64
	uncovered string // "serial/cluster" last reported as uncovered
}

// watchFreshness dates the bundle in force until ctx ends: every
// freshnessInterval, and at the moments it turns stale and expires, since a
// node that hears nothing new must still notice.
func (d *daemon) watchFreshness(ctx context.Context) {
	for {
		wait := freshnessInterval
		if st := d.bundles.Load(); st != nil {
			if b := st.Current(); b != nil && !b.Expires.IsZero() {
				for _, at := range []time.Time{b.Expires.Add(-b.StaleMargin()), b.Expires} {
					if until := time.Until(at); until > 0 && until < wait {
						wait = until + 10*time.Millisecond
					}
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		d.mu.Lock()
		node := d.node
		d.mu.Unlock()
		d.checkAlarms(node)
	}
}

// checkAlarms reports, once per change, a bundle in force that is stale or
// expired, and a cluster name no policy of the bundle names.
//
// What an expired bundle means: the node keeps enforcing it (never "allow
// everything": its revocations and policies stay), raises
// nri_csig_bundle_expired, logs at ERROR and writes an audit record, until
// a newer bundle arrives. A restart does not restore it: boot fails closed
// (allow lists only) until a bundle that has not expired is read.
func (d *daemon) checkAlarms(node *nodeconfig.Config) {
	st := d.bundles.Load()
	var status bundlestore.Status
	var b *policy.Bundle
	if st != nil {
		status, b = st.Status(), st.Current()
	}
	d.metrics.setFreshness(status)

	d.mu.Lock()
	a := &d.alarms
	changed := status.Freshness != a.freshness || status.Serial != a.serial
	a.freshness, a.serial = status.Freshness, status.Serial
	uncovered := ""
	if b != nil && node.Cluster != "" && !namesCluster(b, node.Cluster) {
		uncovered = fmt.Sprintf("%d/%s", b.Serial, node.Cluster)
	}
	newUncovered := uncovered != "" && uncovered != a.uncovered
	a.uncovered = uncovered
	d.mu.Unlock()
	d.metrics.clusterUncovered.Set(boolGauge(uncovered != ""))

	if changed && b != nil {
		rec := audit.Record{Event: "freshness", Decision: string(status.Freshness), Rule: "bundle", BundleSerial: int64(status.Serial)}
		switch status.Freshness {
		case policy.Expired:
			rec.Reason = fmt.Sprintf("the bundle in force (serial %d) expired at %s; the node keeps enforcing it: publish a newer bundle signed with a later expires",
				status.Serial, status.Expires.UTC().Format(time.RFC3339))
			d.log.Error("the policy bundle in force has expired; it stays in force until a newer one arrives",
				"serial", status.Serial, "expires", status.Expires, "source", status.Source)
		case policy.Stale:
			rec.Reason = fmt.Sprintf("the bundle in force (serial %d) expires at %s; publish a newer one before then",
				status.Serial, status.Expires.UTC().Format(time.RFC3339))
			d.log.Warn("the policy bundle in force is close to its expiry", "serial", status.Serial, "expires", status.Expires, "source", status.Source)
		default:
			rec = audit.Record{}
		}
		if rec.Reason != "" {
			d.audit.Write(rec)
		}
	}
	if newUncovered {
		d.audit.Write(audit.Record{Event: "cluster", Decision: "uncovered", Rule: "node-config", BundleSerial: int64(b.Serial),
			Reason: fmt.Sprintf("cluster %q is named by no security policy of bundle serial %d: every namespace is uncovered; check the node config's cluster or the policies' spec.clusters", node.Cluster, b.Serial)})
		d.log.Warn("no security policy names this node's cluster: every namespace is uncovered", "cluster", node.Cluster, "serial", b.Serial)
	}
}

// namesCluster reports whether a policy of b names cluster, or every cluster.
func namesCluster(b *policy.Bundle, cluster string) bool {
	for _, p := range b.Policies {
		for _, c := range p.Clusters {
			if c == cluster || c == policy.Wildcard {
				return true
			}
		}
	}
	return false
}

// readyDetail is the second line of /readyz: the bundle in force and its freshness.
func (d *daemon) readyDetail() string {
	st := d.bundles.Load()
	if st == nil {
		return "bundle: none configured"
	}
	s := st.Status()
	switch {
	case s.Serial == 0:
		return "bundle: none in force (only allow-listed images run)"
	case s.Expires.IsZero():
		return fmt.Sprintf("bundle: serial %d, %s (no expiry)", s.Serial, s.Freshness)
	}
	return fmt.Sprintf("bundle: serial %d, %s (expires %s)", s.Serial, s.Freshness, s.Expires.UTC().Format(time.RFC3339))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// alarmGauges are the metrics of checkAlarms: the freshness of the bundle in
// force, and whether the node's cluster is named by no policy.
type alarmGauges struct {
	bundleStale      prometheus.Gauge
	bundleExpired    prometheus.Gauge
	bundleExpiry     prometheus.Gauge
	clusterUncovered prometheus.Gauge
}

func newAlarmGauges(reg *prometheus.Registry) alarmGauges {
	var g alarmGauges
	g.bundleStale = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nri_csig_bundle_stale",
		Help: "1 when the bundle in force is within its stale margin of expiring (20% of its lifetime, at most 24h) or past it: publish a newer bundle.",
	})
	g.bundleExpired = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nri_csig_bundle_expired",
		Help: "1 when the bundle in force is past its signed expires; the node keeps enforcing it until a newer one arrives.",
	})
	g.bundleExpiry = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nri_csig_bundle_expiry_timestamp_seconds",
		Help: "Signed expiry of the bundle in force, Unix seconds (0: none in force, or no expiry).",
	})
	g.clusterUncovered = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nri_csig_cluster_uncovered",
		Help: "1 when no security policy of the bundle in force names this node's cluster (every namespace is uncovered).",
	})
	reg.MustRegister(g.bundleStale, g.bundleExpired, g.bundleExpiry, g.clusterUncovered)
	return g
}

// setFreshness exports the freshness of the bundle in force.
func (m *alarmGauges) setFreshness(s bundlestore.Status) {
	m.bundleStale.Set(boolGauge(s.Freshness == policy.Stale || s.Freshness == policy.Expired))
	m.bundleExpired.Set(boolGauge(s.Freshness == policy.Expired))
	if s.Serial == 0 || s.Expires.IsZero() {
		m.bundleExpiry.Set(0)
	} else {
		m.bundleExpiry.Set(float64(s.Expires.Unix()))
	}
}
