package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/internal/regtest"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// hosts.toml is read again once a minute has passed, not before: an edit
// (here the mirror replaced) is used from the first read after that minute.
func TestHostsTOMLReadAgainAfterAMinute(t *testing.T) {
	root := t.TempDir()
	write := func(mirror string) {
		writeHosts(t, root, "registry.example", fmt.Sprintf(`server = "https://registry.example"
[host."https://%s"]
  capabilities = ["pull", "resolve"]
`, mirror), nil)
	}
	first := func(c *Client) string {
		t.Helper()
		eps, err := c.endpoints(t.Context(), "registry.example")
		if err != nil || len(eps) != 2 {
			t.Fatalf("endpoints = %+v, %v; want the mirror and the server", eps, err)
		}
		return eps[0].Host
	}
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	c := New(Options{ConfigPath: root})
	c.now = clock.now

	write("mirror-a.example")
	if got := first(c); got != "mirror-a.example" {
		t.Fatalf("first host = %s; want mirror-a.example", got)
	}
	write("mirror-b.example")
	clock.t = clock.t.Add(hostsTTL - time.Second)
	if got := first(c); got != "mirror-a.example" {
		t.Fatalf("59 s later: first host = %s; want mirror-a.example (read at most once a minute)", got)
	}
	clock.t = clock.t.Add(2 * time.Second)
	if got := first(c); got != "mirror-b.example" {
		t.Fatalf("61 s later: first host = %s; want mirror-b.example (the edit)", got)
	}
	if ep := c.endpoint("mirror-b.example"); ep == nil {
		t.Errorf("endpoint(mirror-b.example) = nil; want the new mirror's settings")
	}
}

// The docker config is looked at again at most once a second, and a change
// (size or modification time) is used from then on; a removed file has no
// credentials.
func TestDockerConfigReadAgainWhenChanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, regtest.DockerConfig("registry.example", "u", "pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := DockerConfig(p)
	d := kc.Keychain.(*dockerConfig)
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	d.now = clock.now
	reg, _ := name.NewRegistry("registry.example")
	user := func() string {
		t.Helper()
		a, err := kc.Keychain.Resolve(reg)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Username
	}
	if got := user(); got != "u" {
		t.Fatalf("user = %q; want u", got)
	}
	if err := os.WriteFile(p, regtest.DockerConfig("registry.example", "user-2", "password-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The modification time may not have moved on a coarse file system: the
	// size differs, and the time is set apart to be sure.
	mt := time.Now().Add(time.Minute)
	os.Chtimes(p, mt, mt)
	clock.t = clock.t.Add(999 * time.Millisecond)
	if got := user(); got != "u" {
		t.Fatalf("within the second: user = %q; want u (looked at at most once a second)", got)
	}
	clock.t = clock.t.Add(2 * time.Millisecond)
	if got := user(); got != "user-2" {
		t.Fatalf("after a second: user = %q; want user-2 (the changed file)", got)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(time.Second)
	if got := user(); got != "" {
		t.Fatalf("removed file: user = %q; want anonymous", got)
	}
}
