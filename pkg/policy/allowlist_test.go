package policy

import (
	"strings"
	"testing"
)

const (
	dA   = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB   = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	dCfg = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

func TestAllowlistDecide(t *testing.T) {
	lists := Allowlists{"prod": {dA, dCfg}, "locked": {}}
	for name, tc := range map[string]struct {
		s           Subject
		covered     bool
		allowed     bool
		wantDigest  string
		wantMessage string
	}{
		"listed image digest":  {Subject{Namespace: "prod", ImageDigests: []string{dB, dA}}, true, true, dA, "is on the allow list"},
		"listed config digest": {Subject{Namespace: "prod", ConfigDigest: dCfg}, true, true, dCfg, "config digest"},
		// A refusal names the digest containerd pulled, not a candidate.
		"not listed":            {Subject{Namespace: "prod", ImageDigests: []string{dA + "0", dB}, ConfigDigest: dB, PulledDigest: dB}, true, false, dB, "not on the allow list"},
		"no digests found":      {Subject{Namespace: "prod"}, true, false, "", "none found in the node's content store"},
		"empty list locks down": {Subject{Namespace: "locked", ImageDigests: []string{dA}, PulledDigest: dA}, true, false, dA, "not on the allow list"},
		"other namespace":       {Subject{Namespace: "dev", ImageDigests: []string{dA}}, false, false, "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			v, covered := lists.Decide(tc.s)
			if covered != tc.covered {
				t.Fatalf("covered = %v, want %v", covered, tc.covered)
			}
			if !covered {
				return
			}
			if v.Allowed() != tc.allowed || v.Digest != tc.wantDigest || !strings.Contains(v.Reason, tc.wantMessage) {
				t.Errorf("verdict = %+v; want allowed=%v digest=%s reason containing %q", v, tc.allowed, tc.wantDigest, tc.wantMessage)
			}
		})
	}
}
