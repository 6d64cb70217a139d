package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRevocationConfigDigestsRoundTrip: configDigests survive Marshal and
// parse, and are checked like every digest.
func TestRevocationConfigDigestsRoundTrip(t *testing.T) {
	b := NewBundle("rv")
	b.Serial = 1
	cfgs := []string{dCfg, dB}
	if err := b.AddRevocation(&Revocation{Name: "bad", ImageDigests: []string{dA}, ConfigDigests: cfgs,
		Effective: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "configDigests:") {
		t.Fatalf("marshalled bundle lacks configDigests:\n%s", data)
	}
	got, err := ParseBundle("rv.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Revocations[0]; !slices.Equal(r.ConfigDigests, cfgs) {
		t.Errorf("configDigests = %v, want %v", r.ConfigDigests, cfgs)
	}
	for bad, want := range map[string]string{
		strings.Replace(string(data), dB, "sha256:xyz", 1):                                                                         `"sha256:xyz" is not a digest`,
		strings.Replace(string(data), "  imageDigests:\n    - "+dA+"\n", "  keys:\n    - sha256:"+strings.Repeat("1", 64)+"\n", 1): "give the imageDigests too",
	} {
		if _, err := ParseBundle("rv.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parse = %v, want %q in\n%s", err, want, bad)
		}
	}
	// The index follows edits: a revocation deleted no longer refuses.
	s := Subject{Namespace: "x", ConfigDigest: dB, ImageDigests: []string{dCfg + "0"}}
	if v := got.Decide(Request{Subject: s}).Verdict; v.Kind != RuleRevocation || v.Policy != "bad" {
		t.Fatalf("verdict = %v, want revocation/bad", v)
	}
	if err := got.DeleteRevocation("bad"); err != nil {
		t.Fatal(err)
	}
	if v := got.Decide(Request{Subject: s}).Verdict; v.Kind == RuleRevocation {
		t.Errorf("verdict after the delete = %v", v)
	}
}
