// Package verify decides whether an image digest carries a valid signature
// of a key, finds the signatures to judge, and keeps them on the node.
//
// The decision is the pure function Verify: (image digest, signature
// manifests, keys) → which keys verified which signature, and for every
// signature that did not, why. It never touches the network. Discovery is
// separate: Registry reads signatures from an OCI registry (the cosign
// sha256-<hex>.sig tag and OCI 1.1 referrers, with the sha256-<hex> tag
// fallback), Dir from a local OCI layout for air-gapped nodes. Store is the
// node's memory of both: an in-memory index of every image digest's
// signatures and the keys they verified with, which is what a node asks on
// the container-create path, persisted in an append-only log under the
// daemon's state directory, bounded, and garbage-collected with Forget and
// Retain when images leave the node.
//
// It must not import NRI or ttrpc (depcheck_test.go).
package verify
