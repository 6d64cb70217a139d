package bundlestore

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"

	"github.com/nri-csig/nri-csig/internal/bundletest"
	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// events records reload events.
type events struct {
	mu  sync.Mutex
	evs []ReloadEvent
}

func (e *events) hook(ev ReloadEvent) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }

func (e *events) last(t *testing.T) ReloadEvent {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.evs) == 0 {
		t.Fatal("no reload event")
	}
	return e.evs[len(e.evs)-1]
}

func (e *events) count() int { e.mu.Lock(); defer e.mu.Unlock(); return len(e.evs) }

// The keys and the bundle template are internal/bundletest's.
var ecKeys []*ecdsa.PrivateKey

func testKeys(t testing.TB) {
	t.Helper()
	ecKeys = bundletest.EC()
}

func mustLocal(t testing.TB, k *ecdsa.PrivateKey) *local.Key {
	t.Helper()
	s, err := local.New(k, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bundleText(t testing.TB, serial string, prodEnabled bool) []byte {
	return bundletest.BundleText(t, serial, prodEnabled)
}

// publish writes a bundle and, when signer is non-nil, its signature.
func publish(t *testing.T, path string, data []byte, signer *ecdsa.PrivateKey) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + policy.SignatureSuffix)
	if signer != nil {
		k, err := local.New(signer, "")
		if err != nil {
			t.Fatal(err)
		}
		sig, err := policy.SignBundle(context.Background(), data, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+policy.SignatureSuffix, sig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestStore(t *testing.T, src, state string, signer *ecdsa.PrivateKey, ev *events) *Store {
	t.Helper()
	opts := []StoreOption{WithFileSource(src), WithStateDir(state), WithReloadHook(ev.hook),
		WithClock(&fakeClock{time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)})}
	if signer != nil {
		opts = append(opts, WithSigningKey(&signer.PublicKey))
	}
	s, err := NewStore(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreSignedBundles(t *testing.T) {
	testKeys(t)
	dir, state := t.TempDir(), t.TempDir()
	src := filepath.Join(dir, "bundle.yaml")
	signer := ecKeys[3]
	ev := &events{}

	publish(t, src, bundleText(t, "7", true), nil)
	s := newTestStore(t, src, state, signer, ev)
	if err := s.Load(t.Context()); !errors.Is(err, ErrNoBundle) {
		t.Fatalf("Load of an unsigned bundle with a signing key = %v; want ErrNoBundle", err)
	}
	if e := ev.last(t); e.Outcome != Refused || !errors.Is(e.Err, policy.ErrUnsigned) || !strings.Contains(e.Err.Error(), "nri-csig bundle sign") {
		t.Errorf("event = %+v; want a refusal saying to sign", e)
	}
	if s.Current() != nil {
		t.Fatal("an unsigned bundle is in force")
	}

	publish(t, src, bundleText(t, "7", true), ecKeys[0]) // signed by a key the node does not trust
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !errors.Is(e.Err, policy.ErrBadSignature) {
		t.Errorf("event = %+v; want a refusal for the wrong key", e)
	}

	publish(t, src, bundleText(t, "7", true), signer)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Loaded || e.Serial != 7 || e.Err != nil {
		t.Fatalf("event = %+v; want serial 7 loaded", e)
	}
	if b := s.Current(); b == nil || b.Serial != 7 {
		t.Fatalf("Current = %v", b)
	}
	if st := s.Status(); st.Serial != 7 || st.Source != src || st.Digest != policy.BundleDigest(bundleText(t, "7", true)) {
		t.Errorf("Status = %+v", st)
	}

	// A signed bundle edited after signing is refused; 7 stays in force.
	data := bundleText(t, "8", false)
	publish(t, src, bundleText(t, "8", true), signer)
	os.WriteFile(src, data, 0o644)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !strings.Contains(e.Err.Error(), "edited after signing") || e.InForce != 7 {
		t.Errorf("event = %+v; want a refusal of the edited bundle with 7 in force", e)
	}
	if s.Current().Serial != 7 {
		t.Error("a refused bundle replaced the one in force")
	}
	n := ev.count()
	s.poll(t.Context())
	if ev.count() != n {
		t.Error("the same refused bundle was reported twice")
	}
}

func TestStoreNoRollbackAndHotReload(t *testing.T) {
	dir, state := t.TempDir(), filepath.Join(t.TempDir(), "created", "on", "first", "save")
	src := filepath.Join(dir, "bundle.yaml")
	ev := &events{}
	publish(t, src, bundleText(t, "7", false), nil)
	s := newTestStore(t, src, state, nil, ev)
	if err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.Current().Covering("c1", "default"); len(got) != 0 {
		t.Fatalf("prod is disabled, yet Evaluate = %v", got)
	}

	// Switch prod on by editing the bundle: hot reload, no restart.
	publish(t, src, bundleText(t, "8", true), nil)
	s.poll(t.Context())
	if got := s.Current().Covering("c1", "default"); len(got) != 1 || got[0].Name != "prod" {
		t.Fatalf("after enabling prod, Evaluate = %v", got)
	}

	publish(t, src, bundleText(t, "5", false), nil)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !strings.Contains(e.Err.Error(), "serial 5 is lower than serial 8 in force: refusing a rollback") {
		t.Errorf("event = %+v; want a rollback refusal", e)
	}
	publish(t, src, bundleText(t, "8", false), nil)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !strings.Contains(e.Err.Error(), "serial 8 is already in force with other content") {
		t.Errorf("event = %+v; want a same-serial refusal", e)
	}
	if s.Current().Serial != 8 || len(s.Current().Covering("c1", "default")) != 1 {
		t.Error("a refused bundle replaced the one in force")
	}
	publish(t, src, []byte("apiVersion: nri-csig.io/v1alpha1\nkind: Witness\n"), nil)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !strings.Contains(e.Err.Error(), src+":") {
		t.Errorf("event = %+v; want a parse refusal naming the file", e)
	}

	// Boot again: the source is gone; the last good bundle (8) is in force.
	os.Remove(src)
	ev2 := &events{}
	s2 := newTestStore(t, src, state, nil, ev2)
	if err := s2.Load(t.Context()); err != nil {
		t.Fatalf("Load with the source gone: %v", err)
	}
	if s2.Current().Serial != 8 || len(s2.Current().Covering("c1", "default")) != 1 {
		t.Errorf("restored bundle = serial %d", s2.Current().Serial)
	}
	if ev2.evs[0].Outcome != Restored || ev2.last(t).Outcome != Unavailable {
		t.Errorf("boot events = %+v; want restored, then the source unavailable", ev2.evs)
	}
	n := ev2.count()
	s2.poll(t.Context())
	if ev2.count() != n {
		t.Error("an unavailable source was reported on every poll")
	}

	// Boot again with an older bundle at the source: refused, 8 stays.
	publish(t, src, bundleText(t, "7", false), nil)
	s3 := newTestStore(t, src, state, nil, &events{})
	if err := s3.Load(t.Context()); err != nil || s3.Current().Serial != 8 {
		t.Errorf("boot with an older source: %v, serial %d; want 8 (no rollback across reboots)", err, s3.Current().Serial)
	}
}

func TestStoreStateIsVerified(t *testing.T) {
	testKeys(t)
	dir, state := t.TempDir(), t.TempDir()
	src := filepath.Join(dir, "bundle.yaml")
	publish(t, src, bundleText(t, "7", true), ecKeys[3])
	s := newTestStore(t, src, state, ecKeys[3], &events{})
	if err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Someone with access to the state directory weakens the saved bundle.
	sp := filepath.Join(state, StateFile)
	raw, _ := os.ReadFile(sp)
	os.WriteFile(sp, []byte(strings.Replace(string(raw), `enabled: true`, `enabled: false`, 1)), 0o600)
	os.Remove(src)
	ev := &events{}
	s2 := newTestStore(t, src, state, ecKeys[3], ev)
	if err := s2.Load(t.Context()); !errors.Is(err, ErrNoBundle) {
		t.Fatalf("Load with a tampered state = %v; want ErrNoBundle", err)
	}
	if e := ev.evs[0]; e.Outcome != Refused || !errors.Is(e.Err, policy.ErrBadSignature) {
		t.Errorf("event = %+v; want the tampered state refused", e)
	}
	os.WriteFile(sp, []byte("{"), 0o600)
	ev = &events{}
	s3 := newTestStore(t, src, state, ecKeys[3], ev)
	s3.Load(t.Context())
	if e := ev.evs[0]; e.Outcome != Refused || !strings.Contains(e.Err.Error(), "corrupt") {
		t.Errorf("event = %+v; want the corrupt state refused", e)
	}
}

func TestStoreDirectorySource(t *testing.T) {
	// A mounted ConfigMap: files are symlinks into a hidden, swapped directory.
	dir, state := t.TempDir(), t.TempDir()
	mk := func(ts string, data []byte) {
		d := filepath.Join(dir, "..ts"+ts)
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "bundle.yaml"), data, 0o644)
		os.Remove(filepath.Join(dir, "..data"))
		if err := os.Symlink(d, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mk("1", bundleText(t, "7", false))
	if err := os.Symlink(filepath.Join("..data", "bundle.yaml"), filepath.Join(dir, "bundle.yaml")); err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	s := newTestStore(t, dir, state, nil, ev)
	if err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	mk("2", bundleText(t, "9", true))
	s.poll(t.Context())
	if s.Current().Serial != 9 {
		t.Fatalf("after the ConfigMap update, serial = %d; want 9 (events %+v)", s.Current().Serial, ev.evs)
	}
	os.WriteFile(filepath.Join(dir, "other.yml"), []byte("x"), 0o644)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Unavailable || !strings.Contains(e.Err.Error(), "several bundle files") {
		t.Errorf("event = %+v; want an error about several bundle files", e)
	}
	empty := t.TempDir()
	s2 := newTestStore(t, empty, t.TempDir(), nil, ev)
	if err := s2.Load(t.Context()); !errors.Is(err, ErrNoBundle) || !strings.Contains(ev.last(t).Err.Error(), "no *.yaml bundle file") {
		t.Errorf("Load(empty dir) = %v, event %+v", err, ev.last(t))
	}
}

func TestStoreRunPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "bundle.yaml")
		publish(t, src, bundleText(t, "7", false), nil)
		s, err := NewStore(WithFileSource(src), WithInterval(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		s.o.rand = func() float64 { return 0.5 } // no jitter: exactly one interval
		if err := s.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		publish(t, src, bundleText(t, "8", true), nil)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if s.Current().Serial != 7 {
			t.Error("reloaded before the interval")
		}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if s.Current().Serial != 8 {
			t.Errorf("serial = %d after one interval; want 8", s.Current().Serial)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v; want nil on cancel", err)
		}
	})
}

func TestNewStoreOptions(t *testing.T) {
	if _, err := NewStore(); err == nil || !strings.Contains(err.Error(), "no bundle source") {
		t.Errorf("NewStore() = %v", err)
	}
	if _, err := NewStore(WithFileSource("x"), WithInterval(0)); err == nil {
		t.Error("WithInterval(0) accepted")
	}
	if _, err := NewStore(WithFileSource("x"), WithSigningKey("not a key")); err == nil {
		t.Error("WithSigningKey(string) accepted")
	}
}

// Decisions read the bundle in force while reloads replace it (run with -race).
func TestStoreConcurrentReads(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bundle.yaml")
	publish(t, src, bundleText(t, "1", false), nil)
	s, err := NewStore(WithFileSource(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					b := s.Current()
					b.Decide(policy.Request{Cluster: "c1", Subject: policy.Subject{Namespace: "default", ImageDigests: []string{"sha256:" + strings.Repeat("a", 64)}}, Now: time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)})
				}
			}
		})
	}
	for i := 2; i < 12; i++ {
		publish(t, src, bundleText(t, strconv.Itoa(i), i%2 == 0), nil)
		s.poll(t.Context())
	}
	close(stop)
	wg.Wait()
	if s.Current().Serial != 11 {
		t.Errorf("serial = %d; want 11", s.Current().Serial)
	}
}
