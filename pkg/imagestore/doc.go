// Package imagestore keeps an index of the node's images for one containerd
// namespace: which image digests (manifests, and the indexes that list them)
// carry a given image config digest, which repositories each was pulled
// from, and the rootfs chain ID of each config.
//
// NRI reports a container's image by name, digest and config digest, but only
// the config digest is stable: the name and digest are the first reference of
// the image record, not necessarily what the pod asked for (see
// ../../docs/ARCHITECTURE.md). The config fixes the root filesystem, so a
// container is judged on every manifest in the node's content store whose
// config is the container's, and on every index that lists such a manifest.
//
// The index is built with one List of containerd's image records and then
// kept current from image events (Update), so a resolution is a map lookup.
// Each record is read on its own: a record or descriptor that cannot be read
// (too large, garbled, not matching its digest) is skipped, logged once and
// counted (Skipped), and concerns no other image. Only a container whose own
// config is reachable solely through such a record is refused, with an error
// that names the record and what is wrong with it.
package imagestore
