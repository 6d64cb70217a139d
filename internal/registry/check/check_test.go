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
