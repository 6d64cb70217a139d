// Package registry is the one way nri-csig talks to OCI registries: the sign
// and verify commands, bundle push and pull, and the node daemon's signature
// discovery and bundle polling all go through a Client.
//
// A Client owns one HTTP transport for its whole life (one per daemon, one
// per CLI run), so that connections are kept alive and reused, and it keeps,
// per registry host, what it learned once:
//   - the scheme: HTTPS, or plain HTTP for a registry that may use it
//     (loopback, the hosts in Options.HTTPHosts, or any with
//     Options.AllowHTTP), decided at the first exchange and not probed again;
//   - the authentication handshake (go-containerregistry's ping and token
//     exchange), done once per repository scope and reused for 10 minutes;
//     a registry that answers its ping without asking for credentials (and
//     for which the keychain has none) is pinged once for all its
//     repositories.
//
// Every exchange has a deadline (Options.CallTimeout, on top of the
// caller's context), every connection a connect timeout and every answer a
// response-header timeout, so a registry that accepts connections and never
// answers cannot hold a caller. Every answer the Client reads for its caller
// is bounded while it is read (Content-Length checked first, then a limited
// reader), never after: see Repo.Manifest, Repo.Referrers and Repo.Blob.
//
// With Options.ConfigPath (containerd's registry config_path), a registry
// is reached as the node's pulls reach it: its hosts.toml is read with
// containerd's own parser (hosts.go), each host keeps its CA files, client
// certificates and skip_verify, and a Repo sends each read to the mirrors in
// the file's order, then to the registry itself (mirrors.go). Credentials
// come from a Chain of named sources (keychain.go) so that a refusal says
// which registry refused and which source's credentials it was given
// (AccessError); a certificate failure names the CA files used (TLSError).
//
// Writes (pushing a signature or a bundle) use go-containerregistry's remote
// package through Repo.RemoteOptions, with the same transport and handshake.
//
// Package check holds the digest and loopback checks, for packages that must
// not link a registry client.
package registry
