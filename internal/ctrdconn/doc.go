// Package ctrdconn is nri-csigd's connection to containerd's gRPC API: the
// dial containerd's Go client makes (github.com/containerd/containerd/v2/client
// New), and the few API calls the daemon makes on it, as the client makes
// them. The daemon does not link the client package: that package brings
// ~1 MB of binary and ~1.5 MiB of resident memory (its package graph: pull,
// transfer, unpack, archive, sandbox, …) for a handful of calls.
//
// Errors are converted with errgrpc.ToNative as the client converts them, so
// errdefs.IsNotFound and the other classes hold as before.
//
// The record conversions and calls here are adapted from containerd's client
// (client.go, grpc.go, image_store.go, containerstore.go, namespaces.go,
// container.go, task.go; Apache-2.0, © The containerd Authors) at the
// version go.mod pins.
package ctrdconn
