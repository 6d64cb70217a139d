// Package signature is the wire format of image signatures: the cosign "simple
// signing" payload, the cosign signature manifest (tag sha256-<hex>.sig, one
// layer per signature) and the Sigstore bundle that cosign v3 attaches as an
// OCI 1.1 referrer.
//
// Everything here parses untrusted bytes from a registry or a local store, so
// every parser is bounded (size, layer count, JSON depth), refuses duplicate
// JSON keys and unknown critical fields, and is fuzzed. Nothing here touches
// the network or decides trust: pkg/verify does that.
package signature
