package bundlestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"

	"github.com/nri-csig/nri-csig/internal/bundletest"
)

var day0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

func datedBundle(t testing.TB, serial string, notBefore, expires time.Time) []byte {
	return bundletest.Dated(t, serial, notBefore, expires)
}

// An expired bundle is never put in force, from a source or from the state
// directory; an expired last good bundle still bars older ones; and a replay
// of an older, validly signed bundle after the state is wiped is refused
// once its expiry has passed.
func TestStoreRefusesExpiredBundles(t *testing.T) {
	testKeys(t)
	signer := ecKeys[3]
	dir, state := t.TempDir(), t.TempDir()
	src := filepath.Join(dir, "bundle.yaml")
	clock := &fakeClock{day0}
	open := func(ev *events) *Store {
		s, err := NewStore(WithFileSource(src), WithStateDir(state), WithReloadHook(ev.hook), WithClock(clock), WithSigningKey(&signer.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// From the source: expired yesterday.
	publish(t, src, datedBundle(t, "5", time.Time{}, day0.Add(-24*time.Hour)), signer)
	ev := &events{}
	s := open(ev)
	if err := s.Load(t.Context()); !errors.Is(err, ErrNoBundle) {
		t.Fatalf("Load of an expired bundle = %v; want ErrNoBundle", err)
	}
	if e := ev.last(t); e.Outcome != Refused || !errors.Is(e.Err, policy.ErrExpired) || e.Serial != 5 {
		t.Errorf("event = %+v; want serial 5 refused as expired", e)
	}
	// Not valid yet.
	publish(t, src, datedBundle(t, "6", day0.Add(time.Hour), day0.Add(48*time.Hour)), signer)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !errors.Is(e.Err, policy.ErrNotYetValid) {
		t.Errorf("event = %+v; want a refusal as not valid yet", e)
	}

	// Serial 7 valid for two days goes in force and into the state directory.
	old := datedBundle(t, "6", time.Time{}, day0.Add(24*time.Hour))
	publish(t, src, datedBundle(t, "7", time.Time{}, day0.Add(48*time.Hour)), signer)
	s.poll(t.Context())
	if s.Current() == nil || s.Current().Serial != 7 {
		t.Fatalf("serial 7 not in force: %+v", ev.last(t))
	}

	// Three days later, the node reboots: the last good bundle has expired
	// and is not restored; a replay of serial 6 (also expired) is refused.
	clock.t = day0.Add(72 * time.Hour)
	publish(t, src, old, signer)
	ev = &events{}
	s = open(ev)
	if err := s.Load(t.Context()); !errors.Is(err, ErrNoBundle) {
		t.Fatalf("boot with an expired state = %v; want ErrNoBundle", err)
	}
	if ev.evs[0].Outcome != Refused || !errors.Is(ev.evs[0].Err, policy.ErrExpired) || ev.evs[0].Serial != 7 {
		t.Errorf("state event = %+v; want serial 7 refused as expired", ev.evs[0])
	}
	// The expired serial 7 is still a floor: a replay of serial 6 that has not
	// expired (a bundle signed with a long expiry) is refused as a rollback.
	publish(t, src, datedBundle(t, "6", time.Time{}, day0.Add(90*24*time.Hour)), signer)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !strings.Contains(e.Err.Error(), "expired last good bundle: refusing a rollback") {
		t.Errorf("event = %+v; want a rollback refusal against the expired floor", e)
	}

	// The state directory is wiped: a replay of the older, validly signed
	// serial 6 is refused by time alone.
	os.RemoveAll(state)
	publish(t, src, old, signer)
	ev = &events{}
	s = open(ev)
	if err := s.Load(t.Context()); !errors.Is(err, ErrNoBundle) || s.Current() != nil {
		t.Fatalf("replay after wiping the state = %v, in force %v; want ErrNoBundle", err, s.Current())
	}
	if e := ev.last(t); !errors.Is(e.Err, policy.ErrExpired) {
		t.Errorf("event = %+v; want the replay refused as expired", e)
	}
}

// A bundle that expires while in force stays in force (never "allow
// everything"); Status says expired, and stale before that.
func TestStoreKeepsExpiredBundleInForce(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bundle.yaml")
	clock := &fakeClock{day0}
	publish(t, src, datedBundle(t, "7", day0, day0.Add(10*time.Hour)), nil)
	s, err := NewStore(WithFileSource(src), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		at   time.Duration
		want policy.Freshness
	}{{time.Hour, policy.Fresh}, {9 * time.Hour, policy.Stale}, {11 * time.Hour, policy.Expired}} {
		clock.t = day0.Add(step.at)
		s.poll(t.Context())
		st := s.Status()
		if st.Freshness != step.want || st.Serial != 7 || !st.Expires.Equal(day0.Add(10*time.Hour)) {
			t.Errorf("at +%v: Status = %+v; want serial 7 %s", step.at, st, step.want)
		}
	}
	if s.Current() == nil || s.Current().Serial != 7 {
		t.Error("the expired bundle left force; the node must keep enforcing it")
	}
}

// hangSource accepts the request and never answers, like a registry that
// accepts connections and sends nothing.
type hangSource struct{ calls chan struct{} }

func (h *hangSource) String() string { return "hang.example/bundle:prod" }

func (h *hangSource) fetch(ctx context.Context, _ string) (*fetched, error) {
	if h.calls != nil {
		h.calls <- struct{}{}
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestStoreHungSourceIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		state := filepath.Join(dir, "state")
		good := filepath.Join(dir, "bundle.yaml")
		publish(t, good, bundleText(t, "7", true), nil)
		seed, err := NewStore(WithFileSource(good), WithStateDir(state))
		if err != nil {
			t.Fatal(err)
		}
		if err := seed.Load(t.Context()); err != nil {
			t.Fatal(err)
		}

		hang := &hangSource{}
		ev := &events{}
		s, err := NewStore(WithStateDir(state), WithReloadHook(ev.hook), WithFetchTimeout(time.Minute), func(o *storeOptions) error {
			o.sources = append(o.sources, hang)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Boot bounded at 5s: the last good bundle is in force and the hung
		// source is reported unavailable.
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = s.Load(ctx)
		cancel()
		if err != nil || s.Current() == nil || s.Current().Serial != 7 {
			t.Fatalf("Load = %v, in force %v; want the last good bundle", err, s.Current())
		}
		if took := time.Since(start); took != 5*time.Second {
			t.Errorf("Load took %v; want the 5s boot bound", took)
		}
		if e := ev.last(t); e.Outcome != Unavailable || !errors.Is(e.Err, context.DeadlineExceeded) {
			t.Errorf("event = %+v; want the hung source unavailable", e)
		}

		// Without a boot deadline, one read is bounded by the fetch timeout.
		start = time.Now()
		s.poll(t.Context())
		if took := time.Since(start); took != time.Minute {
			t.Errorf("Reload took %v; want the 1m fetch timeout", took)
		}
		if e := ev.last(t); !strings.Contains(e.Err.Error(), "no answer within the fetch timeout of 1m0s") {
			t.Errorf("event = %+v; want the fetch timeout named", e)
		}

		// While Run's poll hangs, Reconfigure returns at once and the new
		// source is read at once.
		hang.calls = make(chan struct{}, 8)
		runCtx, stop := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(runCtx) }()
		s.Kick()
		<-hang.calls // Run is now inside the hung fetch
		publish(t, good, bundleText(t, "8", true), nil)
		next, err := NewStore(WithFileSource(good))
		if err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		s.Reconfigure(next)
		if took := time.Since(start); took != 0 {
			t.Errorf("Reconfigure waited %v behind a hung poll", took)
		}
		synctest.Wait()
		if s.Current().Serial != 8 {
			t.Errorf("after Reconfigure, serial %d in force; want 8 read at once from the new source", s.Current().Serial)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("the new source was read after %v; want at once", took)
		}
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// Rotating the bundle-signing key: the node keeps the bundle in force,
// refuses bundles signed by the new key until it is reconfigured, then
// accepts them.
func TestStoreReconfigureSigningKey(t *testing.T) {
	testKeys(t)
	oldKey, newKey := ecKeys[3], ecKeys[2]
	dir, state := t.TempDir(), t.TempDir()
	src := filepath.Join(dir, "bundle.yaml")
	publish(t, src, bundleText(t, "7", true), oldKey)
	ev := &events{}
	s := newTestStore(t, src, state, oldKey, ev)
	if err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	publish(t, src, bundleText(t, "8", true), newKey)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !errors.Is(e.Err, policy.ErrBadSignature) {
		t.Fatalf("event = %+v; want the new key's bundle refused before the rotation", e)
	}
	next := newTestStore(t, src, state, newKey, &events{})
	s.Reconfigure(next)
	if s.Current().Serial != 7 {
		t.Fatal("reconfiguring dropped the bundle in force")
	}
	s.poll(t.Context()) // the refused content is judged again under the new key
	if e := ev.last(t); e.Outcome != Loaded || e.Serial != 8 {
		t.Fatalf("event = %+v; want serial 8 loaded after the rotation", e)
	}
	// The old key's bundles are now refused.
	publish(t, src, bundleText(t, "9", true), oldKey)
	s.poll(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !errors.Is(e.Err, policy.ErrBadSignature) {
		t.Errorf("event = %+v; want the old key refused after the rotation", e)
	}
}

func TestStoreTooLargeIsRefused(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bundle.yaml")
	if err := os.WriteFile(src, make([]byte, 9<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	s := newTestStore(t, src, t.TempDir(), nil, ev)
	s.Load(t.Context())
	if e := ev.last(t); e.Outcome != Refused || !errors.Is(e.Err, policy.ErrTooLarge) {
		t.Errorf("event = %+v; want a 9 MiB bundle refused as too large", e)
	}
}

func TestPollDelay(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		failures int
		r        float64
		want     time.Duration
	}{
		{30 * time.Second, 0, 0.5, 30 * time.Second},
		{30 * time.Second, 0, 0, 24 * time.Second},
		{30 * time.Second, 0, 0.999999, 36 * time.Second},
		{30 * time.Second, 1, 0.5, time.Minute},
		{30 * time.Second, 3, 0.5, 4 * time.Minute},
		{30 * time.Second, 10, 0.5, 15 * time.Minute},
		{30 * time.Second, 1000, 0.5, 15 * time.Minute},
		{time.Hour, 5, 0.5, time.Hour}, // never below the interval
	} {
		got := pollDelay(tc.interval, tc.failures, tc.r)
		if d := got - tc.want; d > time.Millisecond || d < -time.Millisecond {
			t.Errorf("pollDelay(%v, %d, %v) = %v; want %v", tc.interval, tc.failures, tc.r, got, tc.want)
		}
	}
}

// A bundle not valid yet is taken once the clock gets there, and its
// refusal is reported once.
func TestStoreNotYetValidIsJudgedAgain(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bundle.yaml")
	clock := &fakeClock{day0}
	publish(t, src, datedBundle(t, "7", day0.Add(time.Minute), day0.Add(48*time.Hour)), nil)
	ev := &events{}
	s, err := NewStore(WithFileSource(src), WithClock(clock), WithReloadHook(ev.hook))
	if err != nil {
		t.Fatal(err)
	}
	s.Load(t.Context())
	s.poll(t.Context())
	if ev.count() != 1 || !errors.Is(ev.last(t).Err, policy.ErrNotYetValid) {
		t.Fatalf("events = %+v; want one not-yet-valid refusal", ev.evs)
	}
	clock.t = day0.Add(2 * time.Minute)
	s.poll(t.Context())
	if s.Current() == nil || s.Current().Serial != 7 {
		t.Errorf("serial 7 not in force once valid: %+v", ev.last(t))
	}
}
