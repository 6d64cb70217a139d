// Package watch covers what NRI never sees: containers created through
// containerd's own API (ctr, nerdctl, any containerd client, in any containerd
// namespace) never reach NRI plugins. The watcher follows containerd's task
// events, judges every such container when its task starts (and all running
// ones at startup), reports the untrusted ones and, when configured, stops
// them. It also tells the daemon when images land, so their signatures can be
// verified before any container asks.
//
// A container is judged by what it runs, never by what its record says: the
// record's Image field and labels are chosen by whichever client made it. The
// image is identified by the container's root filesystem snapshot, whose
// parent is the committed snapshot containerd named after the image's rootfs
// chain ID when it unpacked the image (see Identify).
//
// This path is detection plus a kill after the task started: containerd
// offers no hook that could refuse a task before it runs. The process runs for
// the window between the task start event and the kill.
//
// pkg/watch must not import NRI: what NRI knows reaches it as a callback.
package watch
