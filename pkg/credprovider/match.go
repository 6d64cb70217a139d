package credprovider

import (
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
)

// The matching rules below are kubelet's (k8s.io/kubernetes
// pkg/credentialprovider/keyring.go: URLsMatchStr, BasicDockerKeyring.Add
// and Lookup), so that a provider answers for exactly the images it answers
// for on the node's pulls.

// parseSchemeless parses a pattern or image without a scheme, as kubelet's
// ParseSchemelessURL does.
func parseSchemeless(s string) (*url.URL, error) {
	u, err := url.Parse("https://" + s)
	if err != nil {
		return nil, err
	}
	u.Scheme = ""
	return u, nil
}

// splitHost returns the host's dot-separated labels and the port.
func splitHost(u *url.URL) ([]string, string) {
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, ""
	}
	return strings.Split(host, "."), port
}

// matches reports whether image matches the pattern glob: the same port,
// the same number of host labels, each label matching as a filepath glob
// (so "*.example.com" covers "a.example.com" but not "a.b.example.com" nor
// "example.com"), and the pattern's path a string prefix of the image's.
// A pattern that does not parse matches nothing.
func matches(glob, image string) bool {
	g, err := parseSchemeless(glob)
	if err != nil {
		return false
	}
	t, err := parseSchemeless(image)
	if err != nil {
		return false
	}
	gParts, gPort := splitHost(g)
	tParts, tPort := splitHost(t)
	if gPort != tPort || len(gParts) != len(tParts) || !strings.HasPrefix(t.Path, g.Path) {
		return false
	}
	for i := range gParts {
		if ok, err := filepath.Match(gParts[i], tParts[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

// Credential is one username and password from a plugin's answer. Printed
// (%v, %+v, %#v), it shows the username only.
type Credential struct {
	Username, Password string
}

func (c Credential) String() string   { return "username " + c.Username + ", password redacted" }
func (c Credential) GoString() string { return c.String() }

// keyring is a plugin answer's auth map, indexed as kubelet indexes it: keys
// normalized (scheme dropped, a /v1/ or /v2/ path prefix dropped), reverse
// sorted so that the more specific of two overlapping keys comes first.
type keyring struct {
	index []string
	creds map[string]Credential
}

func newKeyring(auth map[string]Credential) keyring {
	k := keyring{creds: make(map[string]Credential, len(auth))}
	for loc, c := range auth {
		v := loc
		if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
			v = "https://" + v
		}
		u, err := url.Parse(v)
		if err != nil {
			continue // kubelet ignores such an entry too
		}
		p := u.Path
		if strings.HasPrefix(p, "/v2/") || strings.HasPrefix(p, "/v1/") {
			p = p[3:]
		}
		key := u.Host
		if p != "" && p != "/" {
			key += p
		}
		if _, dup := k.creds[key]; !dup {
			k.index = append(k.index, key)
		}
		k.creds[key] = c
	}
	sort.Sort(sort.Reverse(sort.StringSlice(k.index)))
	return k
}

// lookup returns the most specific credential matching image, then (as
// kubelet) Docker Hub's for an image on Docker Hub.
func (k keyring) lookup(image string) (Credential, bool) {
	for _, key := range k.index {
		if matches(key, image) {
			return k.creds[key], true
		}
	}
	if c, ok := k.creds["index.docker.io"]; ok && isDockerHub(image) {
		return c, true
	}
	return Credential{}, false
}

// isDockerHub is kubelet's isDefaultRegistryMatch.
func isDockerHub(image string) bool {
	parts := strings.SplitN(image, "/", 2)
	if parts[0] == "" {
		return false
	}
	if len(parts) == 1 || parts[0] == "docker.io" || parts[0] == "index.docker.io" {
		return true
	}
	return !strings.ContainsAny(parts[0], ".:")
}

// registryOf is kubelet's parseRegistry: the image's first path element.
func registryOf(image string) string {
	r, _, _ := strings.Cut(image, "/")
	return r
}
