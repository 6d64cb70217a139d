// Package guard is nri-csig's node-integrity guard: it refuses a container
// that would reach the machinery enforcing the image policy — NRI's socket,
// containerd's socket, state, root and config, nri-csig's own config, state
// and plugin paths — or that runs with the host's powers (privileged, the
// host's PID namespace, raw host devices). No image signature, allow list or
// exemption overrides it: a container that can talk to NRI can register a
// plugin under nri-csig's name, and one that can talk to containerd can start
// anything. Only an explicit node-config entry (namespace AND image digest AND
// what it may reach) lets such a container through.
//
// The package is pure: it judges a Container value (mounts, devices,
// namespaces, built by pkg/plugin from the NRI container and the adjustments
// other plugins made) against a Config, and returns a policy.Verdict of kind
// policy.RuleNodeIntegrity. Paths are compared after cleaning ("..", trailing
// slashes, /var/run = /run); host symlinks are followed through a Resolver the
// caller provides (HostResolver reads the daemon's own view of the host).
//
// What NRI does not tell a plugin cannot be guarded: added capabilities
// (CAP_SYS_ADMIN without "privileged"), AppArmor/SELinux profiles, host
// network or IPC. docs/THREAT-MODEL.md lists what is and is not covered.
package guard
