//go:build integration

package policy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/nettest"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/pkg/bundlestore"
	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// Each test below stops the shared daemon and runs its own node daemons in
// its place (same plugin name, which containerd's default validator
// requires), with their own config, state and bundle; the shared daemon is
// started again when the test ends.

// takeOver stops the shared daemon until the test ends.
func takeOver(t *testing.T) {
	t.Helper()
	if err := daemon.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d, err := env.Containerd.StartDaemon(nodeConfig)
		if err != nil {
			t.Fatalf("restarting the shared daemon: %v", err)
		}
		daemon = d
	})
}

// node is a daemon under test and its config file.
type node struct {
	*testbed.Daemon
	config string
	state  string
}

// writeNodeConfig writes the node config: cluster it, the given bundle
// section (may be empty) and extra lines.
func (n *node) writeConfig(t *testing.T, bundleSection string, extra ...string) {
	t.Helper()
	cfg := "apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: it\nstateDir: " + n.state + "\n" + bundleSection + strings.Join(extra, "")
	if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newNode prepares a daemon's config and state directory; start launches it.
func newNode(t *testing.T) *node {
	t.Helper()
	dir := t.TempDir()
	return &node{config: filepath.Join(dir, "node.yaml"), state: filepath.Join(dir, "state")}
}

// start launches the daemon and waits (within deadline) until it has
// registered with NRI.
func (n *node) start(t *testing.T, deadline time.Duration) {
	t.Helper()
	d, err := env.Containerd.LaunchDaemon(n.config)
	if err != nil {
		t.Fatal(err)
	}
	n.Daemon = d
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("daemon under test, log tail:\n%s", testbed.LastLines(d.Log(), 25))
		}
	})
	if err := d.WaitRegistered(1, deadline); err != nil {
		t.Fatal(err)
	}
}

// waitRecords waits until the daemon has more than before audit records
// matching match, and returns the newest.
func (n *node) waitRecords(t *testing.T, deadline time.Duration, before int, match map[string]string) map[string]any {
	t.Helper()
	var rec map[string]any
	err := testbed.Poll(deadline, func() error {
		recs := n.AuditRecords(match)
		if len(recs) <= before {
			return fmt.Errorf("%d audit records matching %v; want more than %d", len(recs), match, before)
		}
		rec = recs[len(recs)-1]
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nlog tail:\n%s", err, testbed.LastLines(n.Log(), 15))
	}
	return rec
}

func (n *node) get(t *testing.T, path string) string {
	t.Helper()
	base, err := n.MetricsURL()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// ownBundle writes a copy of the shared bundle with policy "fr" (witness
// ci, namespace fr) enabled, signed by key (a .key file) and valid for
// validity (0: no expiry), and returns its path.
func ownBundle(t *testing.T, key string, validity time.Duration) string {
	t.Helper()
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "policy", "create", "--name", "fr", "--witness", "ci", "--cluster", "it", "--namespace", "fr", "--enabled", "--bundle", path)
	if validity == 0 {
		mustCLI(t, "bundle", "sign", "--key", key, "--bundle", path, "--no-expiry")
	} else {
		mustCLI(t, "bundle", "sign", "--key", key, "--bundle", path, "--expires", validity.String())
	}
	return path
}

// resign sets the bundle file's expiry (possibly in the past, which the
// CLI refuses to do) and signs it with key, as a replayed old bundle would be.
func resign(t *testing.T, path, key string, expires time.Time) *policy.Bundle {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.ParseBundle(path, data)
	if err != nil {
		t.Fatal(err)
	}
	b.Expires = expires.UTC().Truncate(time.Second)
	if data, err = b.Marshal(); err != nil {
		t.Fatal(err)
	}
	s, err := keyref.Open(context.Background(), key, keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := policy.SignBundle(context.Background(), data, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+policy.SignatureSuffix, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// seedState saves path's bundle as the node's last good bundle, judged at
// the time at.
func seedState(t *testing.T, n *node, path string, at time.Time) {
	t.Helper()
	pub, err := keyref.OpenPublic(context.Background(), keyFile(bundleKey, "pub"), keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := bundlestore.NewStore(bundlestore.WithFileSource(path), bundlestore.WithStateDir(filepath.Join(n.state, "bundle")),
		bundlestore.WithSigningKey(pub), bundlestore.WithClock(fixedClock(at)))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// hungRegistry accepts TCP connections and never answers, and returns a
// bundle reference on it.
func hungRegistry(t *testing.T) string {
	return nettest.SilentListener(t) + "/security/csig-bundle:prod"
}

func bundleSection(file, oci, signingKey string) string {
	s := "bundle:\n  interval: 1s\n  signingKey: " + signingKey + "\n"
	if file != "" {
		s += "  file: " + file + "\n"
	}
	if oci != "" {
		s += "  oci: " + oci + "\n"
	}
	return s
}

// A bundle registry that accepts connections and never answers: the daemon
// registers with NRI within its 5s boot bound (well inside 15s) and enforces
// the last good bundle, or fails closed without one; a SIGHUP during the
// hung poll applies at once.
func TestBootWithHungBundleRegistry(t *testing.T) {
	takeOver(t)
	unsigned := newImage(t, env.Registry, "app/fr-unsigned:1", "fr-unsigned")
	signed := newImage(t, env.Registry, "app/fr-signed:1", "fr-signed", keyFile(ciKey, "key"))
	hung := hungRegistry(t)

	t.Run("with a last good bundle", func(t *testing.T) {
		n := newNode(t)
		seedState(t, n, ownBundle(t, keyFile(bundleKey, "key"), 24*time.Hour*30), time.Now())
		n.writeConfig(t, bundleSection("", hung, keyFile(bundleKey, "pub")))
		n.start(t, 15*time.Second)
		n.waitRecords(t, 5*time.Second, 0, map[string]string{"event": "reload", "decision": "restored"})
		pod := newPod(t, "fr")
		mustRefuse(t, pod, "unsigned", unsigned, `policy "fr"`)
		mustRun(t, pod, "signed", signed)
		if rec := n.waitRecords(t, 5*time.Second, 0, map[string]string{"event": "reload", "decision": "unavailable"}); !strings.Contains(fmt.Sprint(rec["reason"]), "deadline exceeded") {
			t.Errorf("unavailable record = %v; want the hung source timed out", rec)
		}
	})

	t.Run("without one", func(t *testing.T) {
		n := newNode(t)
		n.writeConfig(t, bundleSection("", hung, keyFile(bundleKey, "pub")))
		n.start(t, 15*time.Second)
		pod := newPod(t, "fr")
		mustRefuse(t, pod, "unsigned", unsigned, "no policy bundle is in force")
		mustRefuse(t, pod, "signed", signed, "no policy bundle is in force")

		// SIGHUP while the background poll hangs (each poll waits out its 20s
		// fetch timeout): the new allow list applies at once.
		before := len(n.AuditRecords(map[string]string{"event": "reload", "decision": "accepted"}))
		n.writeConfig(t, bundleSection("", hung, keyFile(bundleKey, "pub")),
			"allowlists:\n  - namespace: fr\n    digests: ["+unsigned.Digest+"]\n")
		if err := n.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		n.waitRecords(t, 3*time.Second, before, map[string]string{"event": "reload", "decision": "accepted"})
		mustRun(t, pod, "allowlisted", unsigned)
		mustRefuse(t, pod, "signed-after", signed, "no policy bundle is in force")

		// SIGHUP that points the bundle at a reachable source: the hung poll
		// is canceled and the new source read at once, not after the hung
		// fetch's 20s timeout.
		n.writeConfig(t, bundleSection(ownBundle(t, keyFile(bundleKey, "key"), 30*24*time.Hour), "", keyFile(bundleKey, "pub")))
		if err := n.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		n.waitRecords(t, 5*time.Second, 0, map[string]string{"event": "reload", "decision": "loaded"})
		mustRun(t, pod, "signed-file", signed)
		mustRefuse(t, pod, "unsigned-file", unsigned, `policy "fr"`)
	})
}

// SIGHUP that adds the bundle section enforces the bundle with no restart.
func TestReloadAddsBundleSection(t *testing.T) {
	takeOver(t)
	unsigned := newImage(t, env.Registry, "app/fr-add:1", "fr-add-unsigned")
	n := newNode(t)
	n.writeConfig(t, "")
	n.start(t, 15*time.Second)
	pod := newPod(t, "fr")
	mustRun(t, pod, "before", unsigned)

	own := ownBundle(t, keyFile(bundleKey, "key"), 30*24*time.Hour)
	n.writeConfig(t, bundleSection(own, "", keyFile(bundleKey, "pub")))
	if err := n.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rec := n.waitRecords(t, 10*time.Second, 0, map[string]string{"event": "reload", "decision": "accepted"})
	if !strings.Contains(fmt.Sprint(rec["reason"]), "bundle section added") {
		t.Errorf("reload record = %v; want it to say the bundle section was added", rec)
	}
	n.waitRecords(t, 10*time.Second, 0, map[string]string{"event": "reload", "decision": "loaded"})
	mustRefuse(t, pod, "after", unsigned, `policy "fr"`)

	// A setting only a restart applies is refused by name, and nothing of
	// the new config applies.
	n.writeConfig(t, bundleSection(own, "", keyFile(bundleKey, "pub")), "signatures:\n  registry: true\n  dir: /var/empty\n")
	if err := n.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rec = n.waitRecords(t, 10*time.Second, 0, map[string]string{"event": "reload", "decision": "refused", "rule": "node-config"})
	if !strings.Contains(fmt.Sprint(rec["reason"]), "needs a restart: signatures.dir") {
		t.Errorf("refused record = %v; want needs a restart: signatures.dir", rec)
	}
	mustRefuse(t, pod, "after-refused-reload", unsigned, `policy "fr"`)

	// SIGHUP that removes the bundle section: no security policy any more.
	accepted := len(n.AuditRecords(map[string]string{"event": "reload", "decision": "accepted"}))
	n.writeConfig(t, "")
	if err := n.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rec = n.waitRecords(t, 10*time.Second, accepted, map[string]string{"event": "reload", "decision": "accepted"})
	if !strings.Contains(fmt.Sprint(rec["reason"]), "bundle section removed") {
		t.Errorf("reload record = %v; want it to say the bundle section was removed", rec)
	}
	mustRun(t, pod, "after-removal", unsigned)
}

// Rotating the bundle-signing key (docs/OPERATIONS.md): a bundle signed by
// the new key is refused until the node config names the new key; after
// the SIGHUP it goes in force.
func TestReloadRotatesBundleSigningKey(t *testing.T) {
	takeOver(t)
	unsigned := newImage(t, env.Registry, "app/fr-rotate:1", "fr-rotate-unsigned")
	newKey := filepath.Join(t.TempDir(), "bundle-signing-2")
	mustCLI(t, "generate-key", "--output-key-prefix", newKey)
	own := ownBundle(t, keyFile(bundleKey, "key"), 30*24*time.Hour)
	n := newNode(t)
	n.writeConfig(t, bundleSection(own, "", keyFile(bundleKey, "pub")))
	n.start(t, 15*time.Second)
	n.waitRecords(t, 10*time.Second, 0, map[string]string{"event": "reload", "decision": "loaded"})
	pod := newPod(t, "fr2")
	mustRun(t, pod, "before", unsigned)

	// Step 1: publish the next bundle signed by the new key. The node, still
	// on the old key, refuses it and keeps the bundle in force.
	refused := len(n.AuditRecords(map[string]string{"event": "reload", "decision": "refused"}))
	mustCLI(t, "policy", "create", "--name", "fr2", "--witness", "ci", "--cluster", "it", "--namespace", "fr2", "--enabled", "--bundle", own)
	mustCLI(t, "bundle", "sign", "--key", newKey+".key", "--bundle", own)
	n.waitRecords(t, 10*time.Second, refused, map[string]string{"event": "reload", "decision": "refused"})
	mustRun(t, pod, "still-old", unsigned)

	// Step 2: point the node config at the new public key and SIGHUP.
	loaded := len(n.AuditRecords(map[string]string{"event": "reload", "decision": "loaded"}))
	n.writeConfig(t, bundleSection(own, "", newKey+".pub"))
	if err := n.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	n.waitRecords(t, 10*time.Second, loaded, map[string]string{"event": "reload", "decision": "loaded"})
	mustRefuse(t, pod, "after", unsigned, `policy "fr2"`)
}

// An expired bundle is refused from the source (a replay of an older,
// validly signed bundle after the state directory was wiped) and from the
// state directory; the node fails closed.
func TestExpiredBundleRefused(t *testing.T) {
	takeOver(t)
	unsigned := newImage(t, env.Registry, "app/fr-expired:1", "fr-expired-unsigned")
	expiredAt := time.Now().Add(-time.Hour)

	t.Run("from the source", func(t *testing.T) {
		own := ownBundle(t, keyFile(bundleKey, "key"), 0)
		b := resign(t, own, keyFile(bundleKey, "key"), expiredAt)
		n := newNode(t) // an empty state directory: wiped
		n.writeConfig(t, bundleSection(own, "", keyFile(bundleKey, "pub")))
		n.start(t, 15*time.Second)
		rec := n.waitRecords(t, 10*time.Second, 0, map[string]string{"event": "reload", "decision": "refused"})
		if r := fmt.Sprint(rec["reason"]); !strings.Contains(r, "bundle has expired") || !strings.Contains(r, fmt.Sprintf("serial %d expired at", b.Serial)) {
			t.Errorf("refused record = %v; want the replayed bundle refused as expired", rec)
		}
		mustRefuse(t, newPod(t, "fr"), "unsigned", unsigned, "no policy bundle is in force")
	})

	t.Run("from the state directory", func(t *testing.T) {
		own := ownBundle(t, keyFile(bundleKey, "key"), 0)
		resign(t, own, keyFile(bundleKey, "key"), expiredAt)
		n := newNode(t)
		seedState(t, n, own, expiredAt.Add(-time.Hour)) // saved while it was valid
		n.writeConfig(t, bundleSection(filepath.Join(t.TempDir(), "gone.yaml"), "", keyFile(bundleKey, "pub")))
		n.start(t, 15*time.Second)
		rec := n.waitRecords(t, 10*time.Second, 0, map[string]string{"event": "reload", "decision": "refused"})
		if r := fmt.Sprint(rec["reason"]); !strings.Contains(r, "bundle has expired") || !strings.Contains(r, "last-good-bundle.json") {
			t.Errorf("refused record = %v; want the last good bundle refused as expired", rec)
		}
		if n.Count(`"decision":"restored"`) != 0 {
			t.Error("the expired last good bundle was restored")
		}
		mustRefuse(t, newPod(t, "fr"), "unsigned", unsigned, "no policy bundle is in force")
	})
}

// A bundle within a day of its expiry is reported stale (metric, /readyz,
// audit record); once it expires in force, the node keeps enforcing it and
// raises nri_csig_bundle_expired with an ERROR log line.
func TestStaleAndExpiredBundleInForce(t *testing.T) {
	takeOver(t)
	unsigned := newImage(t, env.Registry, "app/fr-stale:1", "fr-stale-unsigned")
	own := ownBundle(t, keyFile(bundleKey, "key"), 0)
	expires := resign(t, own, keyFile(bundleKey, "key"), time.Now().Add(6*time.Second)).Expires
	n := newNode(t)
	n.writeConfig(t, bundleSection(own, "", keyFile(bundleKey, "pub")))
	n.start(t, 15*time.Second)
	n.waitRecords(t, 10*time.Second, 0, map[string]string{"event": "reload", "decision": "loaded"})

	n.waitRecords(t, 5*time.Second, 0, map[string]string{"event": "freshness", "decision": "stale"})
	if m := n.get(t, "/metrics"); !strings.Contains(m, "\nnri_csig_bundle_stale 1\n") || !strings.Contains(m, "\nnri_csig_bundle_expired 0\n") {
		t.Errorf("/metrics while stale:\n%s", grepLines(m, "nri_csig_bundle_"))
	}
	if r := n.get(t, "/readyz"); !strings.Contains(r, "stale (expires "+expires.Format(time.RFC3339)+")") {
		t.Errorf("/readyz while stale = %q", r)
	}
	pod := newPod(t, "fr")
	mustRefuse(t, pod, "while-stale", unsigned, `policy "fr"`)

	n.waitRecords(t, 15*time.Second, 0, map[string]string{"event": "freshness", "decision": "expired"})
	if m := n.get(t, "/metrics"); !strings.Contains(m, "\nnri_csig_bundle_expired 1\n") || !strings.Contains(m, "\nnri_csig_bundle_stale 1\n") {
		t.Errorf("/metrics once expired:\n%s", grepLines(m, "nri_csig_bundle_"))
	}
	if n.Count(`"level":"ERROR","msg":"the policy bundle in force has expired`) == 0 {
		t.Error("no ERROR log line for the expired bundle in force")
	}
	// Never "allow everything": the expired bundle stays in force.
	mustRefuse(t, pod, "once-expired", unsigned, `policy "fr"`)
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
