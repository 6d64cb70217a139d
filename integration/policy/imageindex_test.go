//go:build integration

package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// rawIndex is an index manifest pushed byte for byte, lies included.
type rawIndex []byte

func (r rawIndex) RawManifest() ([]byte, error)        { return r, nil }
func (r rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }

// pushLyingIndex pushes an index of two linux images, amd64 (the node's) and
// arm64 (never pulled), and pulls it with crictl. With ownOversized the
// amd64 manifest itself is a valid manifest above the 4 MiB limit; otherwise
// the arm64 descriptor declares 5 MiB (the real manifest is small).
func pushLyingIndex(t *testing.T, repoTag, marker string, ownOversized bool) testbed.Image {
	t.Helper()
	own, err := testbed.BusyboxImage(env.Tools.Busybox, marker)
	if err != nil {
		t.Fatal(err)
	}
	if ownOversized {
		own = mutate.Annotations(own, map[string]string{"padding": strings.Repeat("x", 5<<20)}).(v1.Image)
	}
	other, err := testbed.PlatformImage(env.Tools.Busybox, marker+"-arm64", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	repo := repoTag[:strings.LastIndex(repoTag, ":")]
	desc := func(img v1.Image, tag, arch string, size int64) map[string]any {
		t.Helper()
		if _, err := env.Registry.Push(repo+":"+tag, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		mt, _ := img.MediaType()
		if size == 0 {
			size, _ = img.Size()
		}
		return map[string]any{"mediaType": mt, "digest": d.String(), "size": size,
			"platform": map[string]string{"os": "linux", "architecture": arch}}
	}
	otherSize := int64(5 << 20)
	if ownOversized {
		otherSize = 0 // honest: the lie is the node's own manifest
	}
	raw, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIImageIndex,
		"manifests": []any{desc(own, "own", "amd64", 0), desc(other, "other", "arm64", otherSize)}})
	if err != nil {
		t.Fatal(err)
	}
	ref := env.Registry.Ref(repoTag)
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r, rawIndex(raw)); err != nil {
		t.Fatal(err)
	}
	cfg, _ := own.ConfigName()
	pulled, err := env.Containerd.Pull(ref)
	if err != nil {
		t.Fatalf("containerd did not pull the lying index: %v", err)
	}
	if pulled != cfg.String() {
		t.Fatalf("pulled image ID %s, want the amd64 config %s", pulled, cfg)
	}
	t.Cleanup(func() { env.Containerd.Crictl("rmi", ref) })
	return testbed.Image{Ref: ref, ConfigDigest: cfg.String()}
}

// allowConfigs appends an allow list to the node config, reloads it, and
// restores the original at the end of the test.
func allowConfigs(t *testing.T, namespace string, digests ...string) {
	t.Helper()
	orig, err := os.ReadFile(nodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	hup := func(content []byte) {
		t.Helper()
		before := len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": "accepted"}))
		if err := os.WriteFile(nodeConfig, content, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := daemon.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if err := testbed.Poll(10*time.Second, func() error {
			if len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": "accepted"})) <= before {
				return fmt.Errorf("the daemon did not accept the node config")
			}
			return nil
		}); err != nil {
			t.Fatalf("%v\n%s", err, testbed.LastLines(daemon.Log(), 10))
		}
	}
	list := "allowlists:\n  - namespace: " + namespace + "\n    digests:\n"
	for _, d := range digests {
		list += "      - " + d + "\n"
	}
	hup(append(append([]byte{}, orig...), list...))
	t.Cleanup(func() { hup(orig) })
}

func skippedMetric(t *testing.T) string {
	t.Helper()
	base, err := daemon.MetricsURL()
	if err != nil {
		return "no metrics server: " + err.Error()
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "nri_csig_image_records_skipped_total ") {
			return l
		}
	}
	return "nri_csig_image_records_skipped_total missing"
}

// A lying index on the node (issue 9): every other image (signed,
// allow-listed, uncovered) is decided exactly as before it landed, and an
// image whose own manifest is above the limit is refused for its own
// containers only, with a reason naming the record, unless an allow-list
// entry of its config digest lets it run.
func TestLyingIndexAffectsOnlyItself(t *testing.T) {
	signed := newImage(t, env.Registry, "lie/signed:1", "lie-signed", keyFile(ciKey, "key"))
	unsigned := newImage(t, env.Registry, "lie/unsigned:1", "lie-unsigned")
	listed := newImage(t, env.Registry, "lie/listed:1", "lie-listed")
	ownCfg := func() string { // the config of the oversized image, before it lands
		img, _ := testbed.BusyboxImage(env.Tools.Busybox, "lie-own")
		c, _ := img.ConfigName()
		return c.String()
	}()
	allowConfigs(t, "lie-repair", listed.ConfigDigest, ownCfg)
	enforced, repair, free := newPod(t, "signed"), newPod(t, "lie-repair"), newPod(t, "lie-free")

	decidedAsBefore := func(phase string) {
		t.Helper()
		mustRun(t, enforced, "signed-"+phase, signed)
		mustRefuse(t, enforced, "unsigned-"+phase, unsigned, `policy "ci-required"`, unsigned.Digest, "no signatures found")
		mustRun(t, repair, "listed-"+phase, listed)
		mustRefuse(t, repair, "unlisted-"+phase, unsigned, "not on the allow list")
		mustRun(t, free, "uncovered-"+phase, unsigned)
		rec := waitRecord(t, map[string]string{"event": "create", "container": "uncovered-" + phase})
		if rec["decision"] != "allow" || rec["rule"] != "uncovered" {
			t.Errorf("%s: the uncovered container was decided by %v", phase, rec)
		}
	}
	decidedAsBefore("before")

	// 1. Another platform's child, never fetched, declares 5 MiB.
	liar := pushLyingIndex(t, "lie/other-platform:1", "lie-other", false)
	decidedAsBefore("liar")
	// The liar's own platform is a valid manifest: it is judged like any image.
	mustRun(t, free, "liar-uncovered", liar)
	mustRefuse(t, enforced, "liar-enforced", liar, `policy "ci-required"`)

	// 2. The node's own platform manifest is above the limit.
	own := pushLyingIndex(t, "lie/own-oversized:1", "lie-own", true)
	decidedAsBefore("oversized")
	mustRefuse(t, free, "oversized-uncovered", own, "image record "+own.ConfigDigest, "above the 4194304 byte manifest limit", "crictl rmi")
	mustRefuse(t, enforced, "oversized-enforced", own, "image record "+own.ConfigDigest)
	// Its config digest is on the repair namespace's allow list: that decides.
	mustRun(t, repair, "oversized-listed", own)
	rec := waitRecord(t, map[string]string{"event": "create", "container": "oversized-listed"})
	if rec["decision"] != "allow" || rec["rule"] != "allowlist" {
		t.Errorf("the allow-listed config was decided by %v", rec)
	}

	log := daemon.Log()
	for _, w := range []string{"imagestore: skipped", "5242880"} {
		if !strings.Contains(log, w) {
			t.Errorf("the daemon's log does not say %q about the skipped records", w)
		}
	}
	if m := skippedMetric(t); m == "nri_csig_image_records_skipped_total 0" || !strings.HasPrefix(m, "nri_csig_image_records_skipped_total ") {
		t.Errorf("skipped records metric: %s", m)
	}
}
