package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/internal/bundletest"
)

// indentPEM returns the public key of a fresh EC key, indented for a bundle.
func indentPEM(t *testing.T, _ int) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return bundletest.IndentPEM(t, &k.PublicKey, "        ")
}

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

// A bundle names at most MaxSignatureRepositories distinct repositories;
// witnesses sharing one count once.
func TestSignatureRepositoriesCapped(t *testing.T) {
	var extra strings.Builder
	testKeys(t)
	for i := 0; i <= MaxSignatureRepositories; i++ {
		fmt.Fprintf(&extra, "---\napiVersion: nri-csig.io/v1alpha1\nkind: Witness\nmetadata:\n  name: w%d\nspec:\n  signatureRepository: registry.example.com/sigs%d\n  keys:\n    - publicKey: |\n%s\n", i, i, indentPEM(t, i))
	}
	_, err := ParseBundle("bundle.yaml", []byte(fill(t, validBundle)+extra.String()))
	want := fmt.Sprintf("Witness w%d: spec.signatureRepository: the bundle already names %d signature repositories", MaxSignatureRepositories, MaxSignatureRepositories)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("ParseBundle with %d repositories: %v; want %q", MaxSignatureRepositories+1, err, want)
	}
	if strings.Count(err.Error(), "signature repositories") != 1 {
		t.Fatalf("only the repository over the bound is refused: %v", err)
	}
}

// SignatureRepositories lists the repositories of the witnesses of the
// enabled policies of a cluster, each once, in bundle order.
func TestSignatureRepositoriesOfCluster(t *testing.T) {
	text := edited(t, "  name: qa\nspec:\n", "  name: qa\nspec:\n  signatureRepository: registry.example.com/qa-sigs\n")
	text = strings.Replace(text, "  name: release\nspec:\n", "  name: release\nspec:\n  signatureRepository: registry.example.com/qa-sigs\n", 1)
	text = strings.Replace(text, "  name: legacy\nspec:\n", "  name: legacy\nspec:\n  signatureRepository: registry.example.com/legacy-sigs\n", 1)
	b := mustParse(t, text)
	if got := b.SignatureRepositories("c1"); !slices.Equal(got, []string{"registry.example.com/qa-sigs"}) {
		t.Errorf("SignatureRepositories(c1) = %v; want qa-sigs once (release and qa share it; legacy's policy is not enabled)", got)
	}
	if got := b.SignatureRepositories("elsewhere"); len(got) != 0 {
		t.Errorf("SignatureRepositories(elsewhere) = %v; want none", got)
	}
}
