package plugin

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-csig/nri-csig/pkg/decision"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

const (
	trustedDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	configDigest  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

type fakeImages struct {
	digests []string
	err     error
	delay   time.Duration
}

func (f fakeImages) Resolve(ctx context.Context, _ string) ([]string, map[string][]string, error) {
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	return f.digests, nil, f.err
}

// stuckDecider ignores its context, as a buggy decision source might.
type stuckDecider struct{}

func (stuckDecider) Decide(context.Context, policy.Subject) policy.Verdict {
	time.Sleep(time.Second)
	return policy.Verdict{Decision: policy.Allow}
}

func request(ns string, img *api.Image, annotations map[string]string) *api.ValidateContainerAdjustmentRequest {
	return &api.ValidateContainerAdjustmentRequest{
		Pod:       &api.PodSandbox{Name: "web", Namespace: ns},
		Container: &api.Container{Name: "app", Image: img, Annotations: annotations},
	}
}

func newTestPlugin(d Decider, images ImageResolver, timeout time.Duration) (*Plugin, *bytes.Buffer) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	return New(d, images, log, Options{DecisionTimeout: timeout}), &logs
}

var allowTrusted = &decision.Decider{Node: decision.Node{Allowlists: policy.Allowlists{"prod": {trustedDigest}}}}

func TestValidateAllowsListedDigest(t *testing.T) {
	p, logs := newTestPlugin(allowTrusted, fakeImages{digests: []string{trustedDigest}}, time.Second)
	err := p.ValidateContainerAdjustment(context.Background(), request("prod", &api.Image{Name: "reg/app:1", ConfigDigest: configDigest}, nil))
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if !strings.Contains(logs.String(), `"decision":"allow"`) {
		t.Errorf("no audit record of the allow: %s", logs.String())
	}
}

func TestValidateRefusesWithActionableMessage(t *testing.T) {
	other := "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	p, logs := newTestPlugin(allowTrusted, fakeImages{digests: []string{other}}, time.Second)
	err := p.ValidateContainerAdjustment(context.Background(),
		request("prod", &api.Image{Name: "reg/app:2", ConfigDigest: configDigest},
			map[string]string{"io.kubernetes.cri.image-name": "reg/app:trusted"}))
	if err == nil {
		t.Fatal("allowed an image that is not on the allow list")
	}
	for _, want := range []string{"nri-csig", `"app"`, "prod/web", "reg/app:2", other, "not on the allow list"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "reg/app:trusted") {
		t.Errorf("the refusal names the caller's image-name annotation instead of the runtime's image: %v", err)
	}
	if !strings.Contains(logs.String(), `"decision":"deny"`) {
		t.Errorf("no audit record of the deny")
	}
}

func TestValidateRefusesWithoutImageIdentity(t *testing.T) {
	p, _ := newTestPlugin(allowTrusted, fakeImages{digests: []string{trustedDigest}}, time.Second)
	// containerd < 2.4 sends no Container.image; the annotation is no substitute.
	err := p.ValidateContainerAdjustment(context.Background(),
		request("free", nil, map[string]string{"io.kubernetes.cri.image-name": "reg/app:trusted"}))
	if err == nil || !strings.Contains(err.Error(), "containerd >= 2.4") {
		t.Fatalf("got %v, want a refusal saying containerd >= 2.4 is needed", err)
	}
}

func TestValidateRefusesWhenContentStoreFails(t *testing.T) {
	p, _ := newTestPlugin(allowTrusted, fakeImages{err: errors.New("connection refused")}, time.Second)
	err := p.ValidateContainerAdjustment(context.Background(), request("free", &api.Image{ConfigDigest: configDigest}, nil))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v, want a refusal naming the content store error", err)
	}
}

func TestValidateRefusesBeforeItsDeadline(t *testing.T) {
	for name, p := range map[string]*Plugin{
		"slow content store": first(newTestPlugin(allowTrusted, fakeImages{delay: time.Second}, 50*time.Millisecond)),
		"stuck decider":      first(newTestPlugin(stuckDecider{}, fakeImages{}, 50*time.Millisecond)),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := p.ValidateContainerAdjustment(context.Background(), request("prod", &api.Image{ConfigDigest: configDigest}, nil))
			if err == nil {
				t.Fatal("allowed although the decision did not finish")
			}
			if took := time.Since(start); took > 500*time.Millisecond {
				t.Errorf("answered after %s; the deadline was 50ms", took)
			}
			if !strings.Contains(err.Error(), "did not finish within") {
				t.Errorf("refusal does not say why: %v", err)
			}
		})
	}
}

func first(p *Plugin, _ *bytes.Buffer) *Plugin { return p }

func TestBudgetIsCappedByNRIRequestTimeout(t *testing.T) {
	p, _ := newTestPlugin(allowTrusted, fakeImages{}, 5*time.Second)
	p.requestTimeout.Store(int64(2 * time.Second))
	if got := p.budget(); got != 1500*time.Millisecond {
		t.Fatalf("budget = %s, want 1.5s (3/4 of NRI's 2s)", got)
	}
}

func TestCheckRuntime(t *testing.T) {
	for _, tc := range []struct {
		runtime, version string
		ok               bool
	}{
		{"containerd", "2.4.2+unknown", true},
		{"containerd", "v2.4.0", true},
		{"containerd", "2.5.0", true},
		{"containerd", "3.0.0", true},
		{"containerd", "2.3.7", false},
		{"containerd", "1.7.20", false},
		{"containerd", "garbage", false},
		{"cri-o", "1.34.0", false},
	} {
		err := checkRuntime(tc.runtime, tc.version)
		if (err == nil) != tc.ok {
			t.Errorf("checkRuntime(%s, %s) = %v, want ok=%v", tc.runtime, tc.version, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsupportedRuntime) {
			t.Errorf("error is not ErrUnsupportedRuntime: %v", err)
		}
	}
}

func TestConfigureRefusesOldContainerd(t *testing.T) {
	p, logs := newTestPlugin(allowTrusted, fakeImages{}, time.Second)
	if _, err := p.Configure(context.Background(), "", "containerd", "2.2.9"); err == nil || !strings.Contains(err.Error(), "upgrade containerd") {
		t.Fatalf("got %v, want a refusal telling to upgrade containerd", err)
	}
	if !errors.Is(p.configureErr(), ErrUnsupportedRuntime) {
		t.Errorf("the refusal is not remembered for Run")
	}
	if !strings.Contains(logs.String(), "refusing to run on this runtime") {
		t.Errorf("the refusal is not logged")
	}
	mask, err := p.Configure(context.Background(), "", "containerd", "2.4.2")
	if err != nil || !mask.IsSet(api.Event_VALIDATE_CONTAINER_ADJUSTMENT) {
		t.Fatalf("Configure on containerd 2.4.2 = %v, %v; want a subscription to validation", mask, err)
	}
}

func BenchmarkDecision(b *testing.B) {
	p, _ := newTestPlugin(allowTrusted, fakeImages{digests: []string{trustedDigest}}, time.Second)
	p.log = slog.New(slog.NewJSONHandler(discard{}, nil))
	req := request("prod", &api.Image{Name: "reg/app:1", ConfigDigest: configDigest}, nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.ValidateContainerAdjustment(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// nowDecider decides at once when now is set, and otherwise only through
// Decide, which is stuck.
type nowDecider struct{ now *policy.Verdict }

func (d nowDecider) DecideNow(policy.Subject) (policy.Verdict, bool) {
	if d.now == nil {
		return policy.Verdict{}, false
	}
	return *d.now, true
}

func (nowDecider) Decide(ctx context.Context, _ policy.Subject) policy.Verdict {
	<-ctx.Done() // stuck until the deadline
	return policy.Verdict{Decision: policy.Allow, Kind: policy.RulePolicy, Reason: "too late"}
}

// nowImages resolves at once when now is set; Resolve answers at once too.
type nowImages struct {
	fakeImages
	now bool
}

func (f nowImages) ResolveNow(string) ([]string, map[string][]string, bool) {
	return f.digests, nil, f.now
}

// A decision the decider and the resolver can make at once is made without
// waiting (a stuck Decide is never asked); when either declines, Decide is
// asked and still bounded by the deadline.
func TestDecideNowAndItsFallback(t *testing.T) {
	allow := &policy.Verdict{Decision: policy.Allow, Kind: policy.RuleAllowlist, Reason: "listed", Digest: trustedDigest}
	images := fakeImages{digests: []string{trustedDigest}}
	for _, tc := range []struct {
		name      string
		d         Decider
		images    ImageResolver
		wantAllow bool
	}{
		{"both at once", nowDecider{now: allow}, nowImages{images, true}, true},
		{"decider declines", nowDecider{}, nowImages{images, true}, false},
		{"resolver declines", nowDecider{now: allow}, nowImages{images, false}, false},
		{"resolver cannot", nowDecider{now: allow}, images, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, logs := newTestPlugin(tc.d, tc.images, 50*time.Millisecond)
			err := p.ValidateContainerAdjustment(context.Background(), request("prod", &api.Image{ConfigDigest: configDigest}, nil))
			if tc.wantAllow {
				if err != nil || !strings.Contains(logs.String(), `"reason":"listed"`) {
					t.Fatalf("refused (%v), or not by the verdict made at once:\n%s", err, logs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "did not finish within") {
				t.Fatalf("want the deadline's refusal from the stuck Decide, got %v", err)
			}
		})
	}
	// No image reported: refused at once, whatever the decider would say.
	p, _ := newTestPlugin(nowDecider{now: allow}, nowImages{images, true}, 50*time.Millisecond)
	if err := p.ValidateContainerAdjustment(context.Background(), request("prod", &api.Image{}, nil)); err == nil ||
		!strings.Contains(err.Error(), "did not report which image") {
		t.Fatalf("a container without an image: %v", err)
	}
}
