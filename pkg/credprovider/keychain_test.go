package credprovider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

const secret = "s3cret-password-never-shown"

// fixture is a bin dir with shell-script plugins and a config naming them.
type fixture struct {
	t      *testing.T
	dir    string
	bin    string
	config string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, dir: dir, bin: filepath.Join(dir, "bin"), config: filepath.Join(dir, "config.yaml")}
	if err := os.Mkdir(f.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// plugin writes an executable shell script; each run appends a line to
// <dir>/<name>.runs and saves its stdin in <dir>/<name>.req.
func (f *fixture) plugin(name, body string) {
	f.t.Helper()
	script := "#!/bin/sh\necho run >> '" + filepath.Join(f.dir, name+".runs") + "'\ncat > '" + filepath.Join(f.dir, name+".req") + "'\n" + body + "\n"
	// Written under syscall.ForkLock: a parallel test forking meanwhile would
	// inherit the file open for writing until its child execs, and running
	// this script then fails with "text file busy" (golang/go#22315).
	syscall.ForkLock.Lock()
	err := os.WriteFile(filepath.Join(f.bin, name), []byte(script), 0o755)
	syscall.ForkLock.Unlock()
	if err != nil {
		f.t.Fatal(err)
	}
}

// answer is a plugin body printing a response.
func answer(keyType, duration string, auth map[string]string) string {
	resp := map[string]any{"apiVersion": PluginAPIVersion, "kind": "CredentialProviderResponse", "cacheKeyType": keyType}
	if duration != "" {
		resp["cacheDuration"] = duration
	}
	a := map[string]any{}
	for k, user := range auth {
		a[k] = map[string]string{"username": user, "password": secret}
	}
	resp["auth"] = a
	js, _ := json.Marshal(resp)
	return "cat <<'EOF'\n" + string(js) + "\nEOF"
}

func (f *fixture) runs(name string) int {
	data, _ := os.ReadFile(filepath.Join(f.dir, name+".runs"))
	return strings.Count(string(data), "run")
}

func (f *fixture) writeConfig(text string) {
	f.t.Helper()
	if err := os.WriteFile(f.config, []byte(text), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) keychain(opts ...Option) *Keychain {
	f.t.Helper()
	k, err := New(f.config, f.bin, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

func providerYAML(name, match, defaultTTL string, extra string) string {
	return "  - name: " + name + "\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n    matchImages: [\"" + match + "\"]\n    defaultCacheDuration: " + defaultTTL + "\n" + extra
}

func configOf(providers ...string) string {
	return "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n" + strings.Join(providers, "")
}

func repo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func user(t *testing.T, a authn.Authenticator) string {
	t.Helper()
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Username
}

// The plugin gets kubelet's request on stdin, the config's args and env;
// its credential is used for the images it matches, and anonymous for the rest.
func TestPluginProtocol(t *testing.T) {
	f := newFixture(t)
	f.plugin("ecr", `echo "$1 $MODE" > '`+filepath.Join(f.dir, "argsenv")+`'`+"\n"+answer("Image", "", map[string]string{"*.example.com": "alice"}))
	f.writeConfig(configOf(providerYAML("ecr", "*.example.com", "1h", "    args: [get-credentials]\n    env:\n      - {name: MODE, value: test}\n")))
	k := f.keychain()
	a, err := k.Resolve(repo(t, "reg.example.com/team/app"))
	if err != nil {
		t.Fatal(err)
	}
	if got := user(t, a); got != "alice" {
		t.Errorf("username = %q; want alice", got)
	}
	if s, ok := a.(interface{ String() string }); !ok || !strings.Contains(s.String(), "kubelet credential provider ecr") || strings.Contains(s.String(), secret) {
		t.Errorf("authenticator names itself %v; want the provider, without the secret", a)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, a); strings.Contains(s, secret) {
			t.Errorf("Sprintf(%s, authenticator) = %q shows the secret", verb, s)
		}
		if s := fmt.Sprintf(verb, Credential{Username: "u", Password: secret}); strings.Contains(s, secret) {
			t.Errorf("Sprintf(%s, credential) = %q shows the secret", verb, s)
		}
	}
	req, _ := os.ReadFile(filepath.Join(f.dir, "ecr.req"))
	var got map[string]any
	if err := json.Unmarshal(req, &got); err != nil {
		t.Fatalf("request %q: %v", req, err)
	}
	if got["apiVersion"] != PluginAPIVersion || got["kind"] != "CredentialProviderRequest" || got["image"] != "reg.example.com/team/app" {
		t.Errorf("request = %s; want the v1 request for reg.example.com/team/app", req)
	}
	if ae, _ := os.ReadFile(filepath.Join(f.dir, "argsenv")); strings.TrimSpace(string(ae)) != "get-credentials test" {
		t.Errorf("plugin saw args and env %q; want \"get-credentials test\"", ae)
	}
	a, err = k.Resolve(repo(t, "other.io/app"))
	if err != nil || a != authn.Anonymous {
		t.Errorf("Resolve(other.io/app) = %v, %v; want anonymous without running the plugin", a, err)
	}
	if n := f.runs("ecr"); n != 1 {
		t.Errorf("plugin ran %d times; want 1", n)
	}
	if s := k.String(); !strings.Contains(s, "ecr") || !strings.Contains(s, f.config) {
		t.Errorf("String() = %q; want the provider and the config path", s)
	}
}

// Docker Hub images reach the plugin as kubelet spells them.
func TestDockerHubImageName(t *testing.T) {
	f := newFixture(t)
	f.plugin("hub", answer("Image", "", map[string]string{"docker.io": "bob"}))
	f.writeConfig(configOf(providerYAML("hub", "docker.io", "1h", "")))
	a, err := f.keychain().Resolve(repo(t, "library/nginx"))
	if err != nil || user(t, a) != "bob" {
		t.Fatalf("Resolve(library/nginx) = %v, %v; want bob", a, err)
	}
	req, _ := os.ReadFile(filepath.Join(f.dir, "hub.req"))
	if !strings.Contains(string(req), `"image":"docker.io/library/nginx"`) {
		t.Errorf("request = %s; want image docker.io/library/nginx", req)
	}
}

// cacheKeyType decides which later lookups an answer serves; the answer's
// cacheDuration, else defaultCacheDuration, how long; 0 is not cached.
func TestCacheKeysAndDurations(t *testing.T) {
	for name, c := range map[string]struct {
		keyType, duration, defaultTTL string
		// runs after: the same image, another repo of the registry, another
		// registry, then the same image after `later`.
		wantRuns [4]int
		later    time.Duration
	}{
		"Image, default duration":           {"Image", "", "1h", [4]int{1, 2, 3, 3}, 59 * time.Minute},
		"Image, default duration expired":   {"Image", "", "1h", [4]int{1, 2, 3, 4}, 61 * time.Minute},
		"Registry, answer's duration":       {"Registry", "10m", "1h", [4]int{1, 1, 2, 3}, 11 * time.Minute},
		"Registry, answer's duration holds": {"Registry", "10m", "1h", [4]int{1, 1, 2, 2}, 9 * time.Minute},
		"Global":                            {"Global", "", "1h", [4]int{1, 1, 1, 1}, 30 * time.Minute},
		"answer's 0 is not cached":          {"Global", "0s", "1h", [4]int{2, 3, 4, 5}, time.Second},
		"default 0 is not cached":           {"Registry", "", "0s", [4]int{2, 3, 4, 5}, time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.plugin("p", answer(c.keyType, c.duration, map[string]string{"*.example.com": "u"}))
			f.writeConfig(configOf(providerYAML("p", "*.example.com", c.defaultTTL, "")))
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			k := f.keychain(withClock(clk.now))
			resolve := func(s string) {
				t.Helper()
				if a, err := k.Resolve(repo(t, s)); err != nil || user(t, a) != "u" {
					t.Fatalf("Resolve(%s) = %v, %v", s, a, err)
				}
			}
			resolve("a.example.com/app")
			resolve("a.example.com/app")
			if n := f.runs("p"); n != c.wantRuns[0] {
				t.Errorf("runs after the same image twice = %d; want %d", n, c.wantRuns[0])
			}
			resolve("a.example.com/other")
			if n := f.runs("p"); n != c.wantRuns[1] {
				t.Errorf("runs after another repository = %d; want %d", n, c.wantRuns[1])
			}
			resolve("b.example.com/app")
			if n := f.runs("p"); n != c.wantRuns[2] {
				t.Errorf("runs after another registry = %d; want %d", n, c.wantRuns[2])
			}
			clk.add(c.later)
			resolve("a.example.com/app")
			if n := f.runs("p"); n != c.wantRuns[3] {
				t.Errorf("runs after %s = %d; want %d", c.later, n, c.wantRuns[3])
			}
		})
	}
}

// A plugin that misbehaves yields a scoped error naming the provider and
// the image, never the content of its answer, and never a crash or a hang.
func TestBadPluginOutput(t *testing.T) {
	for name, c := range map[string]struct {
		body string
		want string
	}{
		"garbage":         {"echo 'password: " + secret + " {not json'", "not a CredentialProviderResponse"},
		"oversized":       {"head -c 3000000 /dev/zero | tr '\\0' 'a'", "larger than 1048576 bytes"},
		"hang":            {"exec sleep 60", "no answer after"},
		"hang in a child": {"sleep 60; echo late", "no answer after"},
		"non-zero exit":   {"echo 'token service unreachable' >&2; exit 3", "exit status 3; stderr: token service unreachable"},
		"wrong version":   {`echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","kind":"CredentialProviderResponse","cacheKeyType":"Image"}'`, `apiVersion "credentialprovider.kubelet.k8s.io/v1beta1"`},
		"bad key type":    {`echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Pod"}'`, `cacheKeyType "Pod"`},
		"unknown field":   {`echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","token":"` + secret + `"}'`, "not a CredentialProviderResponse"},
		"trailing data":   {answer("Image", "", map[string]string{"x.example.com": "u"}) + "\necho '{}'", "data after the JSON document"},
		"negative expiry": {`echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","cacheDuration":"-1m"}'`, "negative cacheDuration"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.plugin("bad", c.body)
			f.writeConfig(configOf(providerYAML("bad", "x.example.com", "1h", "")))
			k := f.keychain(withTimeout(500 * time.Millisecond))
			_, err := k.ResolveContext(context.Background(), repo(t, "x.example.com/app"))
			if !errors.Is(err, ErrPlugin) {
				t.Fatalf("Resolve = %v; want ErrPlugin", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, "kubelet credential provider bad") || strings.Contains(msg, secret) {
				t.Errorf("error = %q; want %q, the provider's name and no secret", msg, c.want)
			}
		})
	}
}

// A failed run is reported again for FailureBackoff without running the
// plugin, then retried.
func TestFailureBackoff(t *testing.T) {
	f := newFixture(t)
	f.plugin("down", "exit 1")
	f.writeConfig(configOf(providerYAML("down", "x.example.com", "1h", "")))
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	k := f.keychain(withClock(clk.now))
	for range 3 {
		if _, err := k.Resolve(repo(t, "x.example.com/app")); !errors.Is(err, ErrPlugin) {
			t.Fatalf("Resolve = %v; want ErrPlugin", err)
		}
	}
	if n := f.runs("down"); n != 1 {
		t.Errorf("plugin ran %d times within the backoff; want 1", n)
	}
	clk.add(FailureBackoff + time.Second)
	_, _ = k.Resolve(repo(t, "x.example.com/app"))
	if n := f.runs("down"); n != 2 {
		t.Errorf("plugin ran %d times after the backoff; want 2", n)
	}
}

// Concurrent lookups of one image share one run.
func TestConcurrentLookupsShareARun(t *testing.T) {
	f := newFixture(t)
	f.plugin("slow", "sleep 0.3\n"+answer("Image", "", map[string]string{"x.example.com": "u"}))
	f.writeConfig(configOf(providerYAML("slow", "x.example.com", "1h", "")))
	k := f.keychain()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if a, err := k.Resolve(repo(t, "x.example.com/app")); err != nil || user(t, a) != "u" {
				t.Errorf("Resolve = %v, %v", a, err)
			}
		})
	}
	wg.Wait()
	if n := f.runs("slow"); n != 1 {
		t.Errorf("plugin ran %d times for 8 concurrent lookups; want 1", n)
	}
}

// The first provider in config order with a matching credential wins.
func TestProviderOrder(t *testing.T) {
	f := newFixture(t)
	f.plugin("first", answer("Global", "", map[string]string{"other.io": "nobody"}))
	f.plugin("second", answer("Global", "", map[string]string{"x.example.com": "second"}))
	f.plugin("third", answer("Global", "", map[string]string{"x.example.com": "third"}))
	f.writeConfig(configOf(providerYAML("first", "x.example.com", "1h", ""), providerYAML("second", "*.example.com", "1h", ""), providerYAML("third", "x.example.com", "1h", "")))
	a, err := f.keychain().Resolve(repo(t, "x.example.com/app"))
	if err != nil || user(t, a) != "second" {
		t.Fatalf("Resolve = %v, %v; want second's credential", a, err)
	}
	if n := f.runs("third"); n != 0 {
		t.Errorf("third ran %d times; want 0", n)
	}
}

func TestCacheBounded(t *testing.T) {
	p := &provider{cache: map[string]entry{}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range MaxCacheEntries + 10 {
		p.store(strings.Repeat("k", 1)+time.Duration(i).String(), entry{expires: now.Add(time.Hour + time.Duration(i))}, now)
	}
	if len(p.cache) != MaxCacheEntries {
		t.Errorf("cache holds %d answers; want %d", len(p.cache), MaxCacheEntries)
	}
	if _, ok := p.cache["k0s"]; ok {
		t.Error("the answer expiring first was kept; want it dropped")
	}
}

func TestConfigErrors(t *testing.T) {
	f := newFixture(t)
	f.plugin("p", "exit 0")
	for name, c := range map[string]struct{ text, want string }{
		"empty":           {"", "the file is empty"},
		"wrong kind":      {"apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n", `kind "KubeletConfiguration"`},
		"no providers":    {configOf(), "at least one provider"},
		"unknown field":   {configOf(providerYAML("p", "x.io", "1h", "    matchImage: [x]\n")), `unknown field "matchImage"`},
		"no duration":     {"apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n  - name: p\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n    matchImages: [x.io]\n", "defaultCacheDuration: required"},
		"old api":         {strings.Replace(configOf(providerYAML("p", "x.io", "1h", "")), "provider.kubelet.k8s.io/v1", "provider.kubelet.k8s.io/v1alpha1", 1), `apiVersion "credentialprovider.kubelet.k8s.io/v1alpha1"`},
		"path name":       {configOf(providerYAML("../p", "x.io", "1h", "")), "must be a file name"},
		"duplicate":       {configOf(providerYAML("p", "x.io", "1h", ""), providerYAML("p", "y.io", "1h", "")), "listed twice"},
		"no matchImages":  {strings.Replace(configOf(providerYAML("p", "x.io", "1h", "")), `["x.io"]`, "[]", 1), "matchImages: at least one"},
		"missing plugin":  {configOf(providerYAML("absent", "x.io", "1h", "")), "no executable"},
		"bad duration":    {configOf(providerYAML("p", "x.io", "soon", "")), "soon"},
		"negative":        {configOf(providerYAML("p", "x.io", "-1h", "")), "must not be negative"},
		"bad match":       {configOf(providerYAML("p", "x.io/%zz", "1h", "")), "not a valid pattern"},
		"not yaml":        {"{{{", "not YAML or JSON"},
		"json is fine":    {`{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"p","apiVersion":"credentialprovider.kubelet.k8s.io/v1","matchImages":["x.io"],"defaultCacheDuration":"1h"}]}`, ""},
		"token mode kept": {configOf(providerYAML("p", "x.io", "1h", "    tokenAttributes:\n      serviceAccountTokenAudience: aud\n      requireServiceAccount: true\n")), ""},
	} {
		t.Run(name, func(t *testing.T) {
			f.writeConfig(c.text)
			_, err := New(f.config, f.bin)
			if c.want == "" {
				if err != nil {
					t.Fatalf("New = %v; want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), f.config) {
				t.Errorf("New = %v; want an error naming the file and %q", err, c.want)
			}
		})
	}
}

// A provider in service-account-token mode is never run, and says why.
func TestTokenModeSkipped(t *testing.T) {
	f := newFixture(t)
	f.plugin("sa", answer("Global", "", map[string]string{"x.io": "u"}))
	f.writeConfig(configOf(providerYAML("sa", "x.io", "1h", "    tokenAttributes:\n      serviceAccountTokenAudience: aud\n      requireServiceAccount: false\n")))
	k := f.keychain()
	if a, err := k.Resolve(repo(t, "x.io/app")); err != nil || a != authn.Anonymous {
		t.Errorf("Resolve = %v, %v; want anonymous", a, err)
	}
	if s := k.Skipped(); len(s) != 1 || !strings.Contains(s[0], "service account token") {
		t.Errorf("Skipped() = %q; want the token-mode provider", s)
	}
}

// A deadline kills the plugin's children too (its own process group).
func TestDeadlineKillsPluginChildren(t *testing.T) {
	f := newFixture(t)
	pidFile := filepath.Join(f.dir, "child.pid")
	f.plugin("slow", "sleep 60 &\necho $! > '"+pidFile+"'\nwait")
	f.writeConfig(configOf(providerYAML("slow", "x.example.com", "1h", "")))
	if _, err := f.keychain(withTimeout(300 * time.Millisecond)).Resolve(repo(t, "x.example.com/app")); !errors.Is(err, ErrPlugin) {
		t.Fatalf("Resolve = %v; want ErrPlugin", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	proc := filepath.Join("/proc", strings.TrimSpace(string(data)), "stat")
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(proc)
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return // gone, or a zombie about to be reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's child %s still runs after the deadline", strings.TrimSpace(string(data)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
