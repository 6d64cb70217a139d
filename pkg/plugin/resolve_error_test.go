package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-csig/nri-csig/pkg/decision"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// An image whose manifests cannot be read is still decided by an allow-list
// entry of its config digest (the repair DaemonSet's case), and refused with
// the resolution's error otherwise.
func TestAllowlistedConfigDecidesWhenResolutionFails(t *testing.T) {
	broken := fakeImages{err: errors.New("no usable manifest with config " + configDigest + ": image record x: garbled")}
	byConfig := &decision.Decider{Node: decision.Node{Allowlists: policy.Allowlists{"kube-system": {configDigest}, "prod": {trustedDigest}}}}
	p, _ := newTestPlugin(byConfig, broken, time.Second)
	img := &api.Image{Name: "reg/repair:1", ConfigDigest: configDigest}

	if err := p.ValidateContainerAdjustment(context.Background(), request("kube-system", img, nil)); err != nil {
		t.Errorf("allow-listed config digest refused when resolution failed: %v", err)
	}
	err := p.ValidateContainerAdjustment(context.Background(), request("prod", img, nil))
	if err == nil {
		t.Fatal("allowed an image whose resolution failed and that no allow list names")
	}
	if !strings.Contains(err.Error(), "garbled") || !strings.Contains(err.Error(), "content store") {
		t.Errorf("refusal does not carry the resolution's error: %v", err)
	}
}
