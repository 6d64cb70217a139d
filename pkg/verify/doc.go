// Package verify decides whether an image digest carries a valid signature
// of a key, and finds the signatures to judge.
//
// The decision is the pure function Verify: (image digest, signature
// manifests, keys) → which keys verified which signature, and for every
// signature that did not, why. It never touches the network. Discovery is
// separate: Registry reads signatures from an OCI registry (the cosign
// sha256-<hex>.sig tag and OCI 1.1 referrers, with the sha256-<hex> tag
// fallback), Dir from a local OCI layout for air-gapped nodes. Verifier puts
// a fetcher and Verify behind a Cache of definitive results, which is what a
// node asks on the container-create path.
package verify
