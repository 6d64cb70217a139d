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

// Repository accepts a repository reference with its registry host and no
// tag or digest ("registry.example.com/team/signatures", "localhost:5000/sigs"):
// the form of cosign's COSIGN_REPOSITORY, with the host required, because a
// bare "team/signatures" would silently mean Docker Hub. It applies
// go-containerregistry's strict rules (name.NewRepository) with the
// distribution grammar for path components, so that what passes here parses
// there. The error says what to change.
func Repository(s string) error {
	q := truncate(s, 120)
	if s == "" {
		return fmt.Errorf("repository is empty; name one like registry.example.com/team/signatures")
	}
	if at := strings.IndexByte(s, '@'); at >= 0 {
		return fmt.Errorf("repository %q names a digest; drop %q: signatures are looked up by the image's digest", q, truncate(s[at:], 80))
	}
	host, path, ok := strings.Cut(s, "/")
	if !ok || !(host == "localhost" || strings.ContainsAny(host, ".:")) {
		return fmt.Errorf("repository %q does not start with a registry host; write it in full, like registry.example.com/%s", q, truncate(s, 80))
	}
	if !validHost(host) {
		return fmt.Errorf("repository %q: %q is not a registry host[:port]", q, truncate(host, 80))
	}
	if i := strings.LastIndexByte(path, ':'); i >= 0 {
		return fmt.Errorf("repository %q names a tag; drop %q: signatures are stored under tags derived from the image's digest", q, truncate(path[i:], 80))
	}
	if len(path) > 255 {
		return fmt.Errorf("repository %q: the path is longer than 255 characters", q)
	}
	if strings.ToLower(path) != path {
		return fmt.Errorf("repository %q: repository paths are lower case; write %s/%s", q, host, truncate(strings.ToLower(path), 80))
	}
	for _, c := range strings.Split(path, "/") {
		if !pathComponent(c) {
			return fmt.Errorf("repository %q: path component %q is not valid (lower-case letters and digits, separated by '.', '_', '__' or dashes)", q, truncate(c, 80))
		}
	}
	return nil
}

// validHost accepts a DNS name, an IPv4 address or a bracketed IPv6
// address, with an optional numeric port.
func validHost(h string) bool {
	name := h
	if strings.HasPrefix(h, "[") || strings.Contains(h, ":") {
		n, port, err := net.SplitHostPort(h)
		if err != nil && strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			n, port, err = h[1:len(h)-1], "0", nil
		}
		if err != nil || port == "" || strings.Trim(port, "0123456789") != "" {
			return false
		}
		if strings.HasPrefix(h, "[") {
			return strings.Contains(n, ":") && net.ParseIP(n) != nil
		}
		name = n
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// pathComponent is the distribution grammar's
// [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*.
func pathComponent(c string) bool {
	alnum := func(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }
	if c == "" || !alnum(c[0]) || !alnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); {
		if alnum(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !alnum(c[j]) {
			j++
		}
		switch sep := c[i:j]; {
		case sep == "." || sep == "_" || sep == "__":
		case strings.Trim(sep, "-") == "":
		default:
			return false
		}
		i = j
	}
	return true
}
