// Package notationtest signs images as the notation CLI does (notation-go's
// generic signer), with an internal/x509test certificate; tests only.
package notationtest

import (
	"context"

	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/signer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nri-csig/nri-csig/internal/x509test"
)

// Sign returns a Notary Project envelope of mediaType (JWS or COSE) over
// desc, signed by leaf with its chain.
func Sign(t x509test.TB, leaf *x509test.Leaf, desc ocispec.Descriptor, mediaType string) []byte {
	t.Helper()
	s, err := signer.NewGenericSigner(leaf.Key, leaf.Chain)
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := s.Sign(context.Background(), desc, notation.SignerSignOptions{SignatureMediaType: mediaType})
	if err != nil {
		t.Fatal(err)
	}
	return env
}
