package watch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

const (
	signedCfg   = "sha256:5167000000000000000000000000000000000000000000000000000000000000"
	unsignedCfg = "sha256:0000000000000000000000000000000000000000000000000000000000005167"
	pauseCfg    = "sha256:9a05e00000000000000000000000000000000000000000000000000000000000"
	signedChain = "sha256:c1000000000000000000000000000000000000000000000000000000000000aa"
	unsignChain = "sha256:c2000000000000000000000000000000000000000000000000000000000000bb"
	pauseChain  = "sha256:c3000000000000000000000000000000000000000000000000000000000000cc"
)

// fakeRuntime is containerd as the watcher sees it.
type fakeRuntime struct {
	mu         sync.Mutex
	containers map[string]containers.Container
	readErr    error
	snaps      map[string]snapshots.Info // by key
	names      map[string]string         // image record name -> config
	pinned     []string
	killed     []string
}

func newFake() *fakeRuntime {
	f := &fakeRuntime{containers: map[string]containers.Container{}, snaps: map[string]snapshots.Info{},
		names:  map[string]string{"signed:1": signedCfg, "unsigned:1": unsignedCfg, "pause:1": pauseCfg},
		pinned: []string{pauseCfg}}
	for _, chain := range []string{signedChain, unsignChain, pauseChain} {
		f.snaps[chain] = snapshots.Info{Kind: snapshots.KindCommitted, Name: chain}
	}
	return f
}

// add records a container whose snapshot sits on chain, claiming image name.
func (f *fakeRuntime) add(t *testing.T, id, image, chain string, labels map[string]string) {
	t.Helper()
	f.containers[id] = containers.Container{ID: id, Image: image, Labels: labels, Spec: spec(t, "rootfs"),
		Snapshotter: "overlayfs", SnapshotKey: id}
	f.snaps[id] = snapshots.Info{Kind: snapshots.KindActive, Name: id, Parent: chain}
}

func spec(t *testing.T, root string) typeurl.Any {
	t.Helper()
	a, err := typeurl.MarshalAny(&specs.Spec{Root: &specs.Root{Path: root}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (f *fakeRuntime) container(_ context.Context, id string) (containers.Container, error) {
	if f.readErr != nil {
		return containers.Container{}, f.readErr
	}
	c, ok := f.containers[id]
	if !ok {
		return c, errdefs.ErrNotFound
	}
	return c, nil
}

func (f *fakeRuntime) snapshot(_ context.Context, _, key string) (snapshots.Info, error) {
	i, ok := f.snaps[key]
	if !ok {
		return i, errdefs.ErrNotFound
	}
	return i, nil
}

func (f *fakeRuntime) imageConfig(_ context.Context, name string) (string, string, error) {
	c, ok := f.names[name]
	if !ok {
		return "", "", errdefs.ErrNotFound
	}
	return c, "sha256:m" + c[len("sha256:"):], nil
}

func (f *fakeRuntime) resolve(_ context.Context, cfg string) ([]string, map[string][]string, error) {
	return []string{"sha256:m" + cfg[len("sha256:"):]}, nil, nil
}

func (f *fakeRuntime) pinnedConfigs(context.Context) ([]string, error) { return f.pinned, nil }

func (f *fakeRuntime) kill(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.killed = append(f.killed, id)
	return nil
}

// chains is a ChainIndex.
type chains map[string][]string

func (c chains) ConfigsForChainID(id string) []string { return c[id] }

// trustSigned allows only the signed config, as a "*" policy would.
type trustSigned struct{}

func (trustSigned) Decide(_ context.Context, s policy.Subject) policy.Verdict {
	if s.ConfigDigest == signedCfg {
		return policy.Verdict{Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "all", Trusted: true, Reason: "signed"}
	}
	return policy.Verdict{Decision: policy.Deny, Kind: policy.RulePolicy, Policy: "all", Reason: "no signature"}
}

type records struct {
	mu   sync.Mutex
	list []audit.Record
}

func (r *records) Write(rec audit.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
}

type setup struct {
	rt   *fakeRuntime
	recs *records
	w    *Watcher
	// known is what NRI told the plugin; synced whether it synchronized.
	known  map[string]bool
	synced bool
}

func newSetup(t *testing.T, stop bool) *setup {
	t.Helper()
	s := &setup{rt: newFake(), recs: &records{}, known: map[string]bool{}, synced: true}
	idx := chains{signedChain: {signedCfg}, unsignChain: {unsignedCfg}, pauseChain: {pauseCfg}}
	s.w = newWatcher(s.rt, Options{
		CRINamespace: "k8s.io",
		KnownToNRI:   func(id string) (bool, bool) { return s.known[id], s.synced },
		SyncWait:     100 * time.Millisecond,
		Index:        func(string) ChainIndex { return idx },
		Decider:      func() Decider { return trustSigned{} },
		Audit:        s.recs,
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Stop:         stop,
	})
	return s
}

func (s *setup) only(t *testing.T) audit.Record {
	t.Helper()
	if len(s.recs.list) != 1 {
		t.Fatalf("got %d records, want 1: %+v", len(s.recs.list), s.recs.list)
	}
	return s.recs.list[0]
}

// A client that names a signed image over an unsigned snapshot is judged by
// the snapshot: untrusted, recorded with the config that runs, and stopped.
func TestSignedNameOverUnsignedSnapshotIsJudgedByContent(t *testing.T) {
	s := newSetup(t, true)
	s.rt.add(t, "liar", "signed:1", unsignChain, nil)
	s.w.judge(context.Background(), "default", "liar", "task start", time.Now())
	rec := s.only(t)
	if rec.ConfigDigest != unsignedCfg || rec.Decision != "stopped" {
		t.Errorf("record = %+v, want the unsigned config, stopped", rec)
	}
	if rec.Image != "" || !strings.Contains(rec.Reason, `names image "signed:1", which is not the image its root filesystem holds`) {
		t.Errorf("record should not carry the claimed name as the image and should say it lied: %+v", rec)
	}
	if !strings.Contains(rec.Reason, "ms after its task started") {
		t.Errorf("record should give the kill-after-start window: %q", rec.Reason)
	}
	if len(s.rt.killed) != 1 || s.rt.killed[0] != "liar" {
		t.Errorf("killed = %v, want [liar]", s.rt.killed)
	}
}

// The same lie the other way round: an unsigned name over a signed snapshot
// runs signed content, and is allowed.
func TestSignedSnapshotIsAllowedWhateverItsName(t *testing.T) {
	s := newSetup(t, true)
	s.rt.add(t, "ok", "signed:1", signedChain, nil)
	s.w.judge(context.Background(), "default", "ok", "task start", time.Now())
	rec := s.only(t)
	if rec.Decision != "allow" || rec.ConfigDigest != signedCfg || rec.Image != "signed:1" || rec.Policy != "all" {
		t.Errorf("record = %+v, want allow of the signed config named signed:1", rec)
	}
	if len(s.rt.killed) != 0 {
		t.Errorf("killed %v", s.rt.killed)
	}
}

// The sandbox label is the client's choice: a container in the CRI namespace
// that NRI does not know is judged, whatever its labels say.
func TestSandboxLabelIsNotTrusted(t *testing.T) {
	s := newSetup(t, true)
	s.rt.add(t, "fake-sandbox", "pause:1", unsignChain, map[string]string{"io.cri-containerd.kind": "sandbox"})
	s.w.judge(context.Background(), "k8s.io", "fake-sandbox", "task start", time.Now())
	rec := s.only(t)
	if rec.Decision != "stopped" || rec.ConfigDigest != unsignedCfg {
		t.Errorf("record = %+v, want the unsigned content stopped", rec)
	}
}

// The CRI's own sandboxes run the pinned pause image: not judged.
func TestCRISandboxRunningThePauseImageIsSkipped(t *testing.T) {
	s := newSetup(t, true)
	s.rt.add(t, "sandbox", "", pauseChain, nil)
	s.w.judge(context.Background(), "k8s.io", "sandbox", "task start", time.Now())
	if len(s.recs.list) != 0 || len(s.rt.killed) != 0 {
		t.Errorf("a pause sandbox was judged: %+v, killed %v", s.recs.list, s.rt.killed)
	}
	// Outside the CRI namespace the pause image is judged like any other.
	s.rt.add(t, "pause-elsewhere", "", pauseChain, nil)
	s.w.judge(context.Background(), "default", "pause-elsewhere", "task start", time.Now())
	if rec := s.only(t); rec.ConfigDigest != pauseCfg || rec.Decision != "stopped" {
		t.Errorf("record = %+v", rec)
	}
}

// An operator-pinned sandbox digest replaces the CRI's pinned images.
func TestConfiguredSandboxConfigsReplacePinnedImages(t *testing.T) {
	s := newSetup(t, false)
	s.w.opts.SandboxConfigs = []string{"sha256:other"}
	s.rt.add(t, "sandbox", "", pauseChain, nil)
	s.w.judge(context.Background(), "k8s.io", "sandbox", "task start", time.Now())
	if rec := s.only(t); rec.ConfigDigest != pauseCfg || rec.Decision != "deny" {
		t.Errorf("record = %+v, want the pause content judged (not the configured sandbox image)", rec)
	}
}

// Containers NRI knows were judged by NRI; the watcher leaves them.
func TestContainersKnownToNRIAreLeftToNRI(t *testing.T) {
	s := newSetup(t, true)
	s.rt.add(t, "cri", "", unsignChain, nil)
	s.known["cri"] = true
	s.w.judge(context.Background(), "k8s.io", "cri", "task start", time.Now())
	if len(s.recs.list) != 0 || len(s.rt.killed) != 0 {
		t.Errorf("judged a container NRI knows: %+v", s.recs.list)
	}
}

// Before NRI synchronized, a CRI-namespace container is not judged (NRI may
// have allowed it by its pod's namespace), and that is counted and logged.
func TestUnsyncedCRIContainerIsCountedNotJudged(t *testing.T) {
	s := newSetup(t, true)
	s.synced = false
	s.rt.add(t, "early", "", unsignChain, nil)
	s.w.judge(context.Background(), "k8s.io", "early", "startup", time.Time{})
	if len(s.recs.list) != 0 || s.w.Dropped() != 1 {
		t.Errorf("records %+v, dropped %d; want none and 1", s.recs.list, s.w.Dropped())
	}
}

// Whatever keeps the image from being identified is an image-identity deny.
func TestUnidentifiedRootfsIsDenied(t *testing.T) {
	cases := map[string]struct {
		edit func(t *testing.T, c *containers.Container, rt *fakeRuntime)
		want string
	}{
		"no snapshot":   {func(_ *testing.T, c *containers.Container, _ *fakeRuntime) { c.SnapshotKey = "" }, "has no snapshot"},
		"snapshot gone": {func(_ *testing.T, c *containers.Container, rt *fakeRuntime) { delete(rt.snaps, c.SnapshotKey) }, "cannot read its snapshot"},
		"unknown chain": {func(_ *testing.T, c *containers.Container, rt *fakeRuntime) {
			rt.snaps["sha256:other"] = snapshots.Info{Kind: snapshots.KindCommitted}
			rt.snaps[c.SnapshotKey] = snapshots.Info{Kind: snapshots.KindActive, Parent: "sha256:other"}
		}, "no image on the node has the root filesystem"},
		"empty rootfs": {func(_ *testing.T, c *containers.Container, rt *fakeRuntime) {
			rt.snaps[c.SnapshotKey] = snapshots.Info{Kind: snapshots.KindActive}
		}, "has no parent"},
		"committed key": {func(_ *testing.T, c *containers.Container, _ *fakeRuntime) { c.SnapshotKey = signedChain }, "is a committed one"},
		"parent is active": {func(_ *testing.T, c *containers.Container, rt *fakeRuntime) {
			rt.snaps[signedChain] = snapshots.Info{Kind: snapshots.KindActive}
			rt.snaps[c.SnapshotKey] = snapshots.Info{Kind: snapshots.KindActive, Parent: signedChain}
		}, "is not committed"},
		"host root": {func(t *testing.T, c *containers.Container, _ *fakeRuntime) { c.Spec = spec(t, "/srv/unsigned") }, `spec's root is "/srv/unsigned"`},
		"no spec":   {func(_ *testing.T, c *containers.Container, _ *fakeRuntime) { c.Spec = nil }, "no runtime spec"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSetup(t, true)
			s.rt.add(t, "x", "signed:1", signedChain, nil)
			c := s.rt.containers["x"]
			tc.edit(t, &c, s.rt)
			s.rt.containers["x"] = c
			s.w.judge(context.Background(), "default", "x", "task start", time.Now())
			rec := s.only(t)
			if rec.Rule != string(policy.RuleImageIdentity) || rec.Decision != "stopped" || !strings.Contains(rec.Reason, tc.want) {
				t.Errorf("record = %+v, want image-identity, stopped, reason with %q", rec, tc.want)
			}
		})
	}
}

// A record that cannot be read is no longer skipped silently.
func TestUnreadableRecordIsDeniedAndRecorded(t *testing.T) {
	s := newSetup(t, true)
	s.rt.readErr = errors.New("boltdb: timeout")
	s.w.judge(context.Background(), "default", "x", "task start", time.Now())
	rec := s.only(t)
	if rec.Rule != string(policy.RuleImageIdentity) || rec.Decision != "stopped" || !strings.Contains(rec.Reason, "boltdb: timeout") {
		t.Errorf("record = %+v", rec)
	}
}

// Images that share every layer run the same files: one trusted one is enough.
func TestTrustedCandidateWithTheSameRootfsAllows(t *testing.T) {
	s := newSetup(t, true)
	s.w.opts.Index = func(string) ChainIndex { return chains{unsignChain: {unsignedCfg, signedCfg}} }
	s.rt.add(t, "x", "", unsignChain, nil)
	s.w.judge(context.Background(), "default", "x", "task start", time.Now())
	if rec := s.only(t); rec.Decision != "allow" || rec.ConfigDigest != signedCfg {
		t.Errorf("record = %+v", rec)
	}
}

// Events that cannot be decoded are counted, and a readable task start is judged.
func TestUndecodableEventsAreCounted(t *testing.T) {
	s := newSetup(t, false)
	s.w.handle(context.Background(), &events.Envelope{Namespace: "default", Topic: "/tasks/start",
		Event: anyOf(t, &apievents.TaskStart{ContainerID: "x"})})
	bad := anyOf(t, &apievents.TaskStart{ContainerID: "x"})
	s.w.handle(context.Background(), &events.Envelope{Namespace: "default", Topic: "/tasks/start",
		Event: fakeAny{url: "types.example/unknown", value: bad.GetValue()}})
	if s.w.Dropped() != 1 {
		t.Errorf("dropped = %d, want 1", s.w.Dropped())
	}
	if len(s.recs.list) != 0 {
		t.Errorf("a missing container was recorded: %+v", s.recs.list)
	}
	s.rt.add(t, "x", "", unsignChain, nil)
	s.w.handle(context.Background(), &events.Envelope{Namespace: "default", Topic: "/tasks/start",
		Event: anyOf(t, &apievents.TaskStart{ContainerID: "x"})})
	if rec := s.only(t); rec.Decision != "deny" {
		t.Errorf("record = %+v", rec)
	}
}

func anyOf(t *testing.T, v any) typeurl.Any {
	t.Helper()
	a, err := typeurl.MarshalAny(v)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type fakeAny struct {
	url   string
	value []byte
}

func (a fakeAny) GetTypeUrl() string { return a.url }
func (a fakeAny) GetValue() []byte   { return a.value }

// BenchmarkJudgeAndStop measures the watcher's own share of the
// kill-after-start window (fake containerd; the real window adds containerd's
// event delivery and the kill, see integration TestOutsideCRIJudgedByContent).
func BenchmarkJudgeAndStop(b *testing.B) {
	t := &testing.T{}
	s := newSetup(t, true)
	s.rt.add(t, "x", "signed:1", unsignChain, nil)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.w.judge(ctx, "default", "x", "task start", time.Now())
	}
}
