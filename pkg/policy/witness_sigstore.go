package policy

import "go.yaml.in/yaml/v3"

// SigstoreTrust is what a witness of kind sigstore trusts: keyless Sigstore
// signatures whose Fulcio certificate chains to its trusted root and names
// one of its identities (issuer and subject).
//
// Placeholder: this build does not verify keyless signatures yet, and the
// parser refuses the kind.
type SigstoreTrust struct{}

// ID is the trust ID, the witness's synthetic key fingerprint.
func (t *SigstoreTrust) ID() string { return trustID(WitnessSigstore, nil) }

func (p *parser) sigstoreTrust(n *yaml.Node, path string) *SigstoreTrust {
	p.errorf(n, path, "witness kind sigstore is not supported by this build of nri-csig; upgrade it, or use kind keys")
	return nil
}

func sigstoreOut(t *SigstoreTrust) any { return nil }
