package check

import (
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	for d, ok := range map[string]bool{
		"sha256:" + strings.Repeat("ab", 32):                            true,
		"sha512:" + strings.Repeat("0f", 64):                            true,
		"sha256:" + strings.Repeat("AB", 32):                            false, // upper case
		"sha256:" + strings.Repeat("ab", 31):                            false, // short
		"sha512:" + strings.Repeat("ab", 32):                            false, // sha512 needs 128
		"sha384:" + strings.Repeat("ab", 48):                            false,
		"sha256:" + strings.Repeat("ab", 31) + "/.":                     false,
		"sha256-" + strings.Repeat("ab", 32):                            false,
		"":                                                              false,
		"sha256:":                                                       false,
		"sha256:" + strings.Repeat("ab", 32) + "\n":                     false,
		"sha256:../../" + strings.Repeat("a", 58):                       false,
		"sha256:" + strings.Repeat("ab", 32) + strings.Repeat("x", 200): false,
	} {
		if err := Digest(d); (err == nil) != ok {
			t.Errorf("Digest(%.40q) = %v; want ok %v", d, err, ok)
		}
	}
	if err := Digest(strings.Repeat("x", 1000)); err == nil || len(err.Error()) > 200 {
		t.Errorf("Digest(1000 bytes) = %v; want a short refusal", err)
	}
}

func TestLoopback(t *testing.T) {
	for h, ok := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true,
		"10.0.0.1": false, "192.168.1.1": false, "registry.local": false, "localhost.example.com": false,
		"": false, "0.0.0.0": false, "::": false, "[::1]": false,
	} {
		if got := Loopback(h); got != ok {
			t.Errorf("Loopback(%q) = %v; want %v", h, got, ok)
		}
	}
	for h, ok := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true, "localhost": true,
		"10.0.0.1:5000": false, "registry.local:5000": false,
	} {
		if got := LoopbackHostPort(h); got != ok {
			t.Errorf("LoopbackHostPort(%q) = %v; want %v", h, got, ok)
		}
	}
}

func TestRepository(t *testing.T) {
	for r, want := range map[string]string{
		"registry.example.com/team/signatures": "",
		"localhost:5000/sigs":                  "",
		"127.0.0.1:38211/sigs":                 "",
		"[::1]:5000/a/b":                       "",
		"reg.example/a.b_c__d-e--f/g":          "",
		"":                                     "empty",
		"team/signatures":                      "registry host",
		"signatures":                           "registry host",
		"registry.example.com/sigs:v1":         "names a tag",
		"registry.example.com/sigs@sha256:" + strings.Repeat("a", 64): "names a digest",
		"registry.example.com/Team/sigs":                              "lower case; write registry.example.com/team/sigs",
		"registry.example.com/team//sigs":                             `component ""`,
		"registry.example.com/-sigs":                                  "not valid",
		"registry.example.com/sigs/":                                  `component ""`,
		"registry.example.com/a...b":                                  "not valid",
		"registry.example.com:port/a":                                 "not a registry host",
		"bad_host.example/a":                                          "not a registry host",
		"[::1/a":                                                      "not a registry host",
		"registry.example.com/" + strings.Repeat("a", 256):            "longer than 255",
	} {
		err := Repository(r)
		switch {
		case want == "" && err != nil:
			t.Errorf("Repository(%q) = %v; want ok", r, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("Repository(%q) = %v; want an error containing %q", r, err, want)
		}
	}
}
