package policy

import (
	"strings"
	"testing"
)

// withSignatureRepository puts signatureRepository (written as given, YAML
// included) into witness qa of the valid test bundle.
func withSignatureRepository(t *testing.T, value string) string {
	t.Helper()
	return edited(t, "  name: qa\nspec:\n", "  name: qa\nspec:\n  signatureRepository: "+value+"\n")
}

func TestSignatureRepositoryParsedAndMarshalled(t *testing.T) {
	b := mustParse(t, withSignatureRepository(t, "registry.example.com/team/signatures"))
	if got := b.Witness("qa").SignatureRepository; got != "registry.example.com/team/signatures" {
		t.Fatalf("qa.SignatureRepository = %q", got)
	}
	if got := b.Witness("release").SignatureRepository; got != "" {
		t.Fatalf("release.SignatureRepository = %q; want none", got)
	}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "  signatureRepository: registry.example.com/team/signatures\n") {
		t.Fatalf("Marshal output lacks the signature repository:\n%s", out)
	}
	if n := strings.Count(string(out), "signatureRepository"); n != 1 {
		t.Fatalf("Marshal wrote signatureRepository %d times; want once (only qa has one)", n)
	}
	b2, err := ParseBundle("out.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if got := b2.Witness("qa").SignatureRepository; got != "registry.example.com/team/signatures" {
		t.Fatalf("after a round trip, qa.SignatureRepository = %q", got)
	}
}

func TestSignatureRepositoryRefusals(t *testing.T) {
	for value, want := range map[string]string{
		"registry.example.com/sigs:v1":                                "Witness qa: spec.signatureRepository: repository \"registry.example.com/sigs:v1\" names a tag; drop \":v1\"",
		"registry.example.com/sigs@sha256:" + strings.Repeat("a", 64): "names a digest",
		"team/signatures":                "does not start with a registry host; write it in full, like registry.example.com/team/signatures",
		"registry.example.com/Team/sigs": "lower case",
		`""`:                             "repository is empty",
		"12":                             "expected a string",
		"[a, b]":                         "expected a string",
	} {
		_, err := ParseBundle("bundle.yaml", []byte(fill(t, withSignatureRepository(t, value))))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("signatureRepository: %s: error %v; want it to contain %q", value, err, want)
		}
	}
}

func TestAddWitnessChecksSignatureRepository(t *testing.T) {
	k := *mustParse(t, validBundle).Witness("qa").Keys[0]
	b := &Bundle{Name: "edited"}
	err := b.AddWitness(&Witness{Name: "qa2", Keys: []*Key{&k}, SignatureRepository: "sigs"})
	if err == nil || !strings.Contains(err.Error(), "registry host") {
		t.Fatalf("AddWitness with a host-less repository: %v; want a refusal naming the host", err)
	}
	if err := b.AddWitness(&Witness{Name: "qa2", Keys: []*Key{&k}, SignatureRepository: "localhost:5000/sigs"}); err != nil {
		t.Fatal(err)
	}
}
