//go:build !nodeonly

package witnessverify

import (
	"fmt"
	"log/slog"

	"github.com/nri-csig/nri-csig/pkg/keyless"
	"github.com/nri-csig/nri-csig/pkg/notaryverify"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// certVerifier: this build verifies certificate witnesses in process.
func certVerifier(k *policy.Key) (verify.CertVerifier, error) { return InProcess(k) }

// InProcess returns the in-process verifier of a certificate witness
// (kind sigstore or x509): what nri-csig cert-verifier, nri-csigd's child,
// runs.
func InProcess(k *policy.Key) (verify.CertVerifier, error) {
	switch k.Kind {
	case policy.WitnessSigstore:
		return keyless.New(k.Sigstore)
	case policy.WitnessX509:
		return notaryverify.New(k.X509)
	}
	return nil, fmt.Errorf("kind %s is not a certificate witness", k.Kind)
}

// SetLogger is for the certificate verifier process's failures, which
// this build has none of.
func SetLogger(*slog.Logger) {}
