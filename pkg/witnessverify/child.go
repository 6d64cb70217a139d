//go:build nodeonly

package witnessverify

import (
	"log/slog"

	"github.com/nri-csig/nri-csig/internal/fullbinary"
	"github.com/nri-csig/nri-csig/pkg/certchild"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// nri-csigd leaves notation-go and sigstore-go out: one child process, the
// full nri-csig found beside it, verifies every certificate witness, and
// starts only when one has a signature to judge.
var child = certchild.NewClient(fullbinary.Find)

func certVerifier(k *policy.Key) (verify.CertVerifier, error) { return child.Verifier(k) }

// SetLogger sets where the certificate verifier process's failures are
// logged (the daemon's log).
func SetLogger(l *slog.Logger) { child.SetLogger(l) }
