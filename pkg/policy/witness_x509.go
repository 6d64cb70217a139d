package policy

import "go.yaml.in/yaml/v3"

// X509Trust is what a witness of kind x509 trusts: Notary Project
// signatures whose certificate chains to its CA certificates and whose
// signing certificate matches one of its trusted identities.
//
// Placeholder: this build does not verify Notary Project signatures yet, and
// the parser refuses the kind.
type X509Trust struct{}

// ID is the trust ID, the witness's synthetic key fingerprint.
func (t *X509Trust) ID() string { return trustID(WitnessX509, nil) }

func (p *parser) x509Trust(n *yaml.Node, path string) *X509Trust {
	p.errorf(n, path, "witness kind x509 is not supported by this build of nri-csig; upgrade it, or use kind keys")
	return nil
}

func x509Out(t *X509Trust) any { return nil }
