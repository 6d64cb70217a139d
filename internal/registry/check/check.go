// Package check holds the two registry-name checks every part of nri-csig
// shares: which digests are well formed, and which registry hosts are on
// loopback (the only ones reached over plain HTTP unless an operator allows
// more). It imports only the standard library, so that the model packages
// (pkg/signature, the policy model) and the KMS provider can use it without
// linking a registry client.
package check

import (
	"fmt"
	"net"
	"strings"
)

// Digest accepts "sha256:" followed by 64, or "sha512:" followed by 128,
// lowercase hex digits: the digests OCI registries and containerd use.
// Anything else (upper case, another algorithm, a path) is refused, so a
// digest that passes can name a file or a URL path segment safely.
func Digest(d string) error {
	alg, hex, ok := strings.Cut(d, ":")
	want := 0
	switch {
	case !ok:
	case alg == "sha256":
		want = 64
	case alg == "sha512":
		want = 128
	}
	if want == 0 || len(hex) != want || !lowerHex(hex) {
		return fmt.Errorf("digest %q is not sha256:<64 lowercase hex> or sha512:<128 lowercase hex>", truncate(d, 80))
	}
	return nil
}

// Loopback reports whether host (a host name or IP, without port) is
// "localhost" or a loopback address (127.0.0.0/8, ::1).
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoopbackHostPort is Loopback for "host[:port]" (a registry name, a URL's Host).
func LoopbackHostPort(hostport string) bool {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return Loopback(h)
	}
	return Loopback(hostport)
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
