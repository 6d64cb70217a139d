package credprovider

import "testing"

// Cases from kubelet's keyring_test.go URLsMatch table, plus the ports and
// paths nri-csig sees on loopback registries.
func TestMatches(t *testing.T) {
	for _, c := range []struct {
		glob, image string
		want        bool
	}{
		{"*.kubernetes.io", "prefix.kubernetes.io", true},
		{"*.kubernetes.io", "kubernetes.io", false},
		{"*.kubernetes.io", "a.b.kubernetes.io", false},
		{"*.*.kubernetes.io", "a.b.kubernetes.io", true},
		{"prefix.*.io", "prefix.kubernetes.io", true},
		{"*-good.kubernetes.io", "prefix-good.kubernetes.io", true},
		{"*-good.kubernetes.io", "prefix-bad.kubernetes.io", false},
		{"kubernetes.io", "kubernetes.io/foo/bar", true},
		{"kubernetes.io/foo", "kubernetes.io/foo/bar", true},
		{"kubernetes.io/foo/bar", "kubernetes.io/foo", false},
		{"kubernetes.io/foo", "kubernetes.io/foobar", true}, // a string prefix, as kubelet
		{"kubernetes.io:5000", "kubernetes.io:5000/foo", true},
		{"kubernetes.io:5000", "kubernetes.io/foo", false},
		{"kubernetes.io", "kubernetes.io:5000/foo", false},
		{"*.kubernetes.io:*", "a.kubernetes.io:5000", false}, // no wildcard ports
		{"127.0.0.1:5000", "127.0.0.1:5000/app", true},
		{"*.*.*.*:5000", "127.0.0.1:5000/app", true},
		{"*.cr.aliyuncs.com", "reg-vpc.cn-hangzhou.cr.aliyuncs.com/ns/app", false},
		{"*.*.cr.aliyuncs.com", "reg-vpc.cn-hangzhou.cr.aliyuncs.com/ns/app", true},
		{"[bad", "kubernetes.io", false},
	} {
		if got := matches(c.glob, c.image); got != c.want {
			t.Errorf("matches(%q, %q) = %v; want %v", c.glob, c.image, got, c.want)
		}
	}
}

func TestKeyringMostSpecificFirst(t *testing.T) {
	k := newKeyring(map[string]Credential{
		"quay.io":                        {Username: "host"},
		"quay.io/coreos":                 {Username: "ns"},
		"https://quay.io/v2/coreos/etcd": {Username: "repo"},
		"index.docker.io/v1/":            {Username: "hub"},
	})
	for image, want := range map[string]string{
		"quay.io/coreos/etcd":     "repo",
		"quay.io/coreos/flannel":  "ns",
		"quay.io/other/app":       "host",
		"docker.io/library/nginx": "hub",
	} {
		c, ok := k.lookup(image)
		if !ok || c.Username != want {
			t.Errorf("lookup(%q) = %q, %v; want %q", image, c.Username, ok, want)
		}
	}
	if c, ok := k.lookup("gcr.io/app"); ok {
		t.Errorf("lookup(gcr.io/app) = %q; want no credential", c.Username)
	}
}
