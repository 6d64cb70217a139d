package plugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-csig/nri-csig/pkg/decision"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// A container created while its image was trusted is judged again at start:
// after the allow list (or a bundle) stops trusting it, the start is refused.
func TestStartRefusedAfterRevocation(t *testing.T) {
	p, logs := newTestPlugin(allowTrusted, fakeImages{digests: []string{trustedDigest}}, time.Second)
	pod := &api.PodSandbox{Name: "web", Namespace: "prod"}
	ctr := &api.Container{Id: "c1", Name: "app", Image: &api.Image{Name: "reg/app:1", ConfigDigest: configDigest}}
	if err := p.StartContainer(context.Background(), pod, ctr); err != nil {
		t.Fatalf("trusted start refused: %v", err)
	}
	if strings.Contains(logs.String(), `"event":"start"`) {
		t.Errorf("an allowed start should not add a record: %s", logs.String())
	}
	p.SetDecider(&decision.Decider{Node: decision.Node{Allowlists: policy.Allowlists{"prod": {}}}})
	err := p.StartContainer(context.Background(), pod, ctr)
	if err == nil {
		t.Fatal("start allowed after the image stopped being trusted")
	}
	if !strings.Contains(err.Error(), "nri-csig") || !strings.Contains(err.Error(), "prod/web") {
		t.Errorf("refusal does not say who refused what: %v", err)
	}
	for _, want := range []string{`"event":"start"`, `"decision":"deny"`, `"container_id":"c1"`, "no longer trusted"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start refusal record lacks %s: %s", want, logs.String())
		}
	}
}

// The start decision keeps the plugin's deadline: NRI would skip a plugin
// that times out (fail-open), so the plugin refuses first.
func TestStartRefusesWhenTheDecisionIsLate(t *testing.T) {
	p, _ := newTestPlugin(stuckDecider{}, fakeImages{}, 50*time.Millisecond)
	err := p.StartContainer(context.Background(), &api.PodSandbox{Namespace: "prod"},
		&api.Container{Id: "c1", Image: &api.Image{ConfigDigest: configDigest}})
	if err == nil || !strings.Contains(err.Error(), "did not finish within") {
		t.Fatalf("err = %v, want a deadline refusal", err)
	}
}

// The plugin subscribes to StartContainer.
func TestConfigureSubscribesToStart(t *testing.T) {
	p, _ := newTestPlugin(allowTrusted, fakeImages{}, time.Second)
	mask, err := p.Configure(context.Background(), "", "containerd", "v2.4.2")
	if err != nil {
		t.Fatal(err)
	}
	if !mask.IsSet(api.Event_START_CONTAINER) {
		t.Errorf("mask %v lacks StartContainer", mask)
	}
}
