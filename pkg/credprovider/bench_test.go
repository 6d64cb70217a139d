package credprovider

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// A cached answer costs a map look-up and the answer's few auth entries,
// whatever the number of images resolved before it (the cache is bounded).
func BenchmarkResolveCached(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		b.Fatal(err)
	}
	body := answer("Registry", "1h", map[string]string{"*.example.com": "u"})
	if err := os.WriteFile(filepath.Join(bin, "p"), []byte("#!/bin/sh\ncat >/dev/null\n"+body+"\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte(configOf(providerYAML("p", "*.example.com", "1h", ""))), 0o644); err != nil {
		b.Fatal(err)
	}
	k, err := New(cfg, bin)
	if err != nil {
		b.Fatal(err)
	}
	repos := make([]name.Repository, 10000)
	for i := range repos {
		repos[i], _ = name.NewRepository(fmt.Sprintf("reg.example.com/team/app-%d", i))
	}
	if _, err := k.Resolve(repos[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if a, err := k.Resolve(repos[i%len(repos)]); err != nil || a == authn.Anonymous {
			b.Fatal(a, err)
		}
	}
}
