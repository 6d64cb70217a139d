// Package certchild runs the certificate witnesses' verifiers (x509 and
// Sigstore) in a child process, so that nri-csigd, the node daemon's
// binary, links neither notation-go nor sigstore-go: most nodes have key
// witnesses only and never pay for their binary pages, and the most
// complex parsers (x509 chains, JWS/COSE/DSSE envelopes, trusted roots) run
// in a process of their own.
//
// The child is the full nri-csig binary running its hidden cert-verifier
// command (Serve), one per daemon, started on the first certificate
// verification and gone after Idle without one. Requests and replies are
// length-prefixed JSON frames on the child's stdin and stdout, each with an
// ID so that several verifications are in flight, each size bounded.
//
// A request that the child cannot answer (it hangs past the deadline, dies,
// replies garbage, or cannot be started) fails with an error wrapping
// verify.ErrVerifierUnavailable: the signature counts for nothing now and
// is judged again later. The child is then killed and started again on the
// next request, no sooner than a backoff after the last start.
package certchild
