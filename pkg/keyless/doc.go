// Package keyless verifies keyless Sigstore signatures of container images:
// cosign v3 bundles (a DSSE envelope over an in-toto statement, a Fulcio
// certificate, transparency-log entries and RFC 3161 timestamps) judged
// with github.com/sigstore/sigstore-go against one witness's trusted root
// and certificate identities.
//
// Verification is offline and pure: the trusted root comes from the witness
// (trusted_root.json bytes carried in the signed policy bundle), never from
// TUF, and the transparency log is never asked online: inclusion is proved
// by the bundle's own inclusion proof, checkpoint and signed entry
// timestamp. Only cosign image signatures count (predicate type
// https://sigstore.dev/cosign/sign/v1); attestations never do.
package keyless
