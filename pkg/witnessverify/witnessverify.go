// Package witnessverify turns a bundle's witness keys into what pkg/verify
// checks signatures with. It is the one place that knows the verifier of
// every witness kind: public keys are checked by pkg/verify itself, and
// certificate witnesses (x509, sigstore) by their own packages, in process
// (inprocess.go), or, in nri-csigd (-tags nodeonly), by those packages in a
// child process, the full nri-csig (child.go, pkg/certchild).
package witnessverify

import (
	"fmt"

	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// For returns the verify.Key for one witness key, named by its fingerprint
// (a public key's, or a certificate witness's trust ID). An error means the
// witness cannot be verified here: its signatures must count for nothing.
func For(k *policy.Key) (verify.Key, error) {
	switch k.Kind {
	case policy.WitnessKeys, "":
		if k.PublicKey == nil {
			return verify.Key{}, fmt.Errorf("witness %q: key %s has no public key", k.Witness, k.Fingerprint)
		}
		return verify.Key{Name: k.Fingerprint, Public: k.PublicKey, Algorithm: k.Algorithm}, nil
	case policy.WitnessSigstore, policy.WitnessX509:
		cv, err := certVerifier(k)
		if err != nil {
			return verify.Key{}, fmt.Errorf("witness %q: %w", k.Witness, err)
		}
		return verify.Key{Name: k.Fingerprint, Cert: cv}, nil
	}
	return verify.Key{}, fmt.Errorf("witness %q: kind %s cannot be verified by this build of nri-csig", k.Witness, k.Kind)
}

// All returns the verify.Keys of ks, in order. A key For refuses is left
// out, so that witness's signatures never count (fail closed), and reported
// to onError.
func All(ks []*policy.Key, onError func(k *policy.Key, err error)) []verify.Key {
	out := make([]verify.Key, 0, len(ks))
	for _, k := range ks {
		vk, err := For(k)
		if err != nil {
			if onError != nil {
				onError(k, err)
			}
			continue
		}
		out = append(out, vk)
	}
	return out
}
