package witnessverify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

func TestAllLeavesOutWhatItCannotVerify(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := &policy.Key{Witness: "w", Kind: policy.WitnessKeys, PublicKey: &priv.PublicKey, Fingerprint: "sha256:aa"}
	noKey := &policy.Key{Witness: "broken", Kind: policy.WitnessKeys, Fingerprint: "sha256:bb"}
	unknown := &policy.Key{Witness: "future", Kind: "future-kind", Fingerprint: "future-kind:sha256:cc"}
	var refused []string
	ks := All([]*policy.Key{good, noKey, unknown}, func(k *policy.Key, err error) { refused = append(refused, k.Witness) })
	if len(ks) != 1 || ks[0].Name != "sha256:aa" || ks[0].Public != &priv.PublicKey {
		t.Fatalf("keys = %+v, want only the public key of witness w", ks)
	}
	if len(refused) != 2 || refused[0] != "broken" || refused[1] != "future" {
		t.Fatalf("refused = %v, want [broken future]", refused)
	}
}
