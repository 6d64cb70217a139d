// Package credprovider runs kubelet's credential provider plugins for
// nri-csig, as a go-containerregistry authn.Keychain: the daemon reads
// signatures with the same credentials the node's kubelet pulls with.
//
// It reads the CredentialProviderConfig file kubelet is given
// (--image-credential-provider-config, kubelet.config.k8s.io/v1, YAML or
// JSON) and the plugin directory (--image-credential-provider-bin-dir), and
// does what kubelet's pkg/credentialprovider/plugin does:
//   - a provider is asked only for images its matchImages cover (kubelet's
//     URLsMatch: the same number of host labels, each a glob, the same port,
//     the pattern's path a prefix of the image's);
//   - the plugin runs with the config's args and env (over the daemon's own
//     environment), reads a CredentialProviderRequest
//     (credentialprovider.kubelet.k8s.io/v1) on stdin and writes a
//     CredentialProviderResponse on stdout;
//   - the answer is cached under its cacheKeyType (Image, Registry or Global)
//     for its cacheDuration, or the provider's defaultCacheDuration when the
//     answer has none; a duration of 0 is not cached; lookups try the image,
//     then its registry, then the global key, as kubelet's;
//   - of the answer's auth entries, the most specific one matching the image
//     is used (kubelet's keyring order).
//
// Where it differs from kubelet, it is bounded: a run has ExecTimeout (10s;
// kubelet allows one minute, but the daemon's signature discovery should not
// wait that long), after which the plugin and its children are killed as one
// process group; stdout is read up to MaxResponseSize, the cache holds at
// most MaxCacheEntries answers per provider, and a failed run is not retried
// for the same image for FailureBackoff, so that a broken plugin is not
// started once per signature fetch. Concurrent lookups of one image share a
// run. When several providers match, the first in the config that answers
// with a matching credential wins (kubelet would try each in a pull).
// Providers in service-account-token mode (tokenAttributes) need a pod's
// token, which the daemon does not have: they are skipped (Skipped says so).
//
// The credentials are never logged or put in an error: a plugin's answer
// that cannot be decoded is reported without its content.
//
// The config, request and response types (wire.go) mirror k8s.io/kubelet's
// v1 types rather than import them, which would link k8s.io/apimachinery
// into the daemon; the tests compare them with upstream's.
package credprovider
