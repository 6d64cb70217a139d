package packaging

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

// The example node config the packages install as /etc/nri-csig/config.yaml
// is one the daemon accepts (a package that installs a config the daemon
// refuses leaves the node refusing every container).
func TestExampleNodeConfigLoads(t *testing.T) {
	c, err := nodeconfig.Load("config.yaml")
	if err != nil {
		t.Fatalf("packaging/config.yaml: %v", err)
	}
	if len(c.Allowlists) != 0 {
		t.Errorf("the installed example config has allow lists %v; a fresh node must enforce nothing until configured", c.Allowlists)
	}
	if len(c.Guard.Paths.Allow) != 0 || c.Guard.RefuseMounts || c.Guard.RefuseDevices {
		t.Errorf("the installed example config changes the guard's defaults: %+v", c.Guard)
	}
	// Its commented guard section parses once uncommented.
	b, _ := os.ReadFile("config.yaml")
	head, block, ok := strings.Cut(string(b), "\n# guard:\n")
	if !ok {
		t.Fatalf("config.yaml has no commented guard: section")
	}
	doc := head + "\nguard:\n" + regexp.MustCompile(`(?m)^# `).ReplaceAllString(block, "")
	doc = strings.ReplaceAll(doc, "sha256:<64 hex>", "sha256:"+strings.Repeat("a", 64))
	if _, err := nodeconfig.Parse("config.yaml, guard uncommented", []byte(doc)); err != nil {
		t.Errorf("%v", err)
	}
}

// Every file the nfpm recipe packs exists (a rename would break make package
// only on the packaging machine).
func TestNFPMSourcesExist(t *testing.T) {
	var recipe struct {
		Contents []struct {
			Src  string `yaml:"src"`
			Dst  string `yaml:"dst"`
			Type string `yaml:"type"`
		} `yaml:"contents"`
		Scripts map[string]string `yaml:"scripts"`
	}
	b, err := os.ReadFile("nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &recipe); err != nil {
		t.Fatalf("nfpm.yaml: %v", err)
	}
	var dsts []string
	for _, c := range recipe.Contents {
		dsts = append(dsts, c.Dst)
		if c.Src == "" || c.Src == "bin/nri-csig" || c.Src == "bin/nri-csigd" || c.Src == "bin/nri-csig-cli" { // built by make build
			continue
		}
		if _, err := os.Stat(filepath.Join("..", c.Src)); err != nil {
			t.Errorf("nfpm.yaml packs %s as %s: %v", c.Src, c.Dst, err)
		}
	}
	for name, script := range recipe.Scripts {
		if _, err := os.Stat(filepath.Join("..", script)); err != nil {
			t.Errorf("nfpm.yaml script %s: %v", name, err)
		}
	}
	for _, want := range []string{"/usr/bin/nri-csig", "/usr/bin/nri-csigd", "/usr/bin/nri-csig-cli", "/usr/lib/systemd/system/nri-csig.service", "/etc/nri-csig/config.yaml", "/etc/containerd/conf.d/50-nri-csig.toml"} {
		if !slices.Contains(dsts, want) {
			t.Errorf("nfpm.yaml does not install %s", want)
		}
	}
	for _, c := range recipe.Contents {
		if c.Dst == "/etc/containerd/conf.d/50-nri-csig.toml" && strings.HasPrefix(c.Type, "config") {
			t.Errorf("the containerd drop-in is a conffile: it would outlive the package and keep containerd requiring an absent plugin")
		}
	}
}

// uncommented returns the lines of a TOML/shell file that are not comments.
func uncommented(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Both drop-ins require the plugin by the name the daemon registers and never
// set the tolerate-missing annotation (any pod could set it).
func TestContainerdDropIns(t *testing.T) {
	for _, path := range []string{"containerd/50-nri-csig.toml", "containerd/preinstalled/50-nri-csig.toml"} {
		body := uncommented(t, path)
		for _, want := range []string{"version = 3", "[plugins.'io.containerd.nri.v1.nri'.default_validator]", "enable = true", "required_plugins = ['nri-csig']", "disable = false"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
		if strings.Contains(body, "tolerate_missing_plugins_annotation") {
			t.Errorf("%s sets tolerate_missing_plugins_annotation", path)
		}
	}
	if body := uncommented(t, "containerd/config.toml"); !strings.Contains(body, "imports = ['/etc/containerd/conf.d/*.toml']") {
		t.Errorf("containerd/config.toml does not import the drop-in folder:\n%s", body)
	}
	// The pre-installed wrapper is named NN-name with the name required above.
	if fi, err := os.Stat("nri/50-nri-csig"); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("nri/50-nri-csig must exist and be executable: %v", err)
	}
	if body := uncommented(t, "nri/50-nri-csig"); !strings.Contains(body, "\nexec /usr/bin/nri-csigd run") {
		t.Errorf("nri/50-nri-csig does not exec nri-csigd run (the daemon's binary):\n%s", body)
	}
}

// unitFile parses a systemd unit into section.key -> values.
func unitFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", path, l)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// The unit's promises: notify once registered, before kubelet, after
// containerd, restarted forever, watchdog, reload by SIGHUP, no capabilities.
func TestSystemdUnit(t *testing.T) {
	u := unitFile(t, "../systemd/nri-csig.service")
	for key, want := range map[string]string{
		"Unit.After":                      "containerd.service",
		"Unit.Before":                     "kubelet.service",
		"Unit.StartLimitIntervalSec":      "0",
		"Service.Type":                    "notify",
		"Service.Restart":                 "always",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.CapabilityBoundingSet":   "",
		"Service.NoNewPrivileges":         "yes",
		"Service.ProtectSystem":           "strict",
		"Service.StateDirectory":          "nri-csig",
		"Service.EnvironmentFile":         "-/etc/default/nri-csig",
		"Install.WantedBy":                "kubelet.service",
		"Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
	} {
		if !slices.Contains(u[key], want) {
			t.Errorf("nri-csig.service %s = %q, want %q among them", key, u[key], want)
		}
	}
	if got := u["Service.WatchdogSec"]; len(got) != 1 || got[0] == "" || got[0] == "0" {
		t.Errorf("nri-csig.service WatchdogSec = %q, want a watchdog", got)
	}
	exec := u["Service.ExecStart"]
	if len(exec) != 1 || !strings.HasPrefix(exec[0], "/usr/bin/nri-csigd run ") || !strings.HasSuffix(exec[0], " $NRI_CSIG_ARGS") {
		t.Errorf("nri-csig.service ExecStart = %q, want /usr/bin/nri-csigd run ... $NRI_CSIG_ARGS", exec)
	}
	p := unitFile(t, "../systemd/nri-csig-reload.path")
	if got := p["Path.PathChanged"]; !slices.Equal(got, []string{"/etc/nri-csig"}) {
		t.Errorf("nri-csig-reload.path PathChanged = %q, want the folder the DaemonSet writes to", got)
	}
}

// manifest is the Kubernetes manifest, one map per document.
func manifest(t *testing.T) map[string]map[string]any {
	t.Helper()
	f, err := os.Open("kubernetes/nri-csig.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs := map[string]map[string]any{}
	dec := yaml.NewDecoder(f)
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kubernetes/nri-csig.yaml: %v", err)
		}
		if d == nil { // a document of comments only
			continue
		}
		md := d["metadata"].(map[string]any)
		docs[d["kind"].(string)+"/"+md["name"].(string)] = d
	}
	return docs
}

func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || len(l) <= k {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

var digestRE = regexp.MustCompile(`@(sha256:[0-9a-f]{64})$`)

// The DaemonSet's own pod must pass nri-csig: its image is pinned by digest
// and that digest is its namespace's allow list in the node config it ships.
// It must not be able to lock a node out: not privileged, no host PID, only
// /etc/nri-csig from the host, and no pod annotations.
func TestKubernetesManifest(t *testing.T) {
	docs := manifest(t)
	ds, ok := docs["DaemonSet/nri-csig-sync"]
	if !ok {
		t.Fatalf("no DaemonSet nri-csig-sync; documents: %v", keys(docs))
	}
	ns := get(t, ds, "metadata", "namespace").(string)
	pod := get(t, ds, "spec", "template", "spec")
	image := get(t, pod, "containers", 0, "image").(string)
	m := digestRE.FindStringSubmatch(image)
	if m == nil {
		t.Fatalf("DaemonSet image %q is not pinned by digest", image)
	}

	cm := docs["ConfigMap/nri-csig-node-config"]
	raw := get(t, cm, "data", "config.yaml").(string)
	c, err := nodeconfig.Parse("ConfigMap nri-csig-node-config config.yaml", []byte(raw))
	if err != nil {
		t.Fatalf("the ConfigMap's node config is refused: %v", err)
	}
	if !slices.Contains(c.Allowlists[ns], m[1]) {
		t.Errorf("the node config's allow list of %s = %v; it must hold the DaemonSet image digest %s", ns, c.Allowlists[ns], m[1])
	}
	if tmpl := get(t, ds, "spec", "template", "metadata").(map[string]any); tmpl["annotations"] != nil {
		t.Errorf("the DaemonSet's pods carry annotations %v; none are needed (no tolerate-missing-plugins)", tmpl["annotations"])
	}
	podSpec := pod.(map[string]any)
	if podSpec["hostPID"] == true || podSpec["hostNetwork"] == true {
		t.Errorf("the sync pod shares the host's PID or network namespace")
	}
	sc := get(t, pod, "containers", 0, "securityContext").(map[string]any)
	if sc["privileged"] != false || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("the sync container's securityContext = %v; want unprivileged", sc)
	}
	for _, v := range get(t, pod, "volumes").([]any) {
		if hp, ok := v.(map[string]any)["hostPath"]; ok && get(t, hp, "path") != "/etc/nri-csig" {
			t.Errorf("hostPath volume %v: the sync pod only needs /etc/nri-csig", hp)
		}
	}
	if !strings.Contains(get(t, docs["ConfigMap/nri-csig-sync"], "data", "sync.sh").(string), "check-config") {
		t.Errorf("sync.sh installs configs without nri-csig check-config")
	}
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The DaemonSet's sync script installs a good config atomically, refuses a
// malformed one (the node keeps its config) and leaves an unchanged one alone.
func TestSyncScript(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nri-csigd")
	// The test's own build settings (no CGO_ENABLED=0 as in make build), so
	// that the packages come from the build cache the unit tests filled; the
	// image ships nri-csigd (Dockerfile).
	build := exec.Command("go", "build", "-tags", "nodeonly", "-o", bin, "../cmd/nri-csig")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script := filepath.Join(dir, "sync.sh")
	os.WriteFile(script, []byte(get(t, manifest(t)["ConfigMap/nri-csig-sync"], "data", "sync.sh").(string)), 0o755)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	os.MkdirAll(src, 0o755)
	os.MkdirAll(dst, 0o755)
	bundleSrc := filepath.Join(dir, "bundle-src")
	os.MkdirAll(bundleSrc, 0o755)
	sync := func() (string, error) {
		cmd := exec.Command(sh, script)
		cmd.Env = append(os.Environ(), "SRC="+src, "BUNDLE_SRC="+bundleSrc, "DST="+dst, "NRI_CSIG="+bin, "INTERVAL=0")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	good := "apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: c1\n"
	os.WriteFile(filepath.Join(src, "config.yaml"), []byte(good), 0o644)
	if out, err := sync(); err != nil || !strings.Contains(out, "installed "+dst+"/config.yaml") {
		t.Fatalf("sync of a good config: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "config.yaml")); string(b) != good {
		t.Errorf("installed config = %q, want %q", b, good)
	}
	if out, err := sync(); err != nil || out != "" {
		t.Errorf("sync of an unchanged config: %v, output %q; want a silent no-op", err, out)
	}

	os.WriteFile(filepath.Join(src, "config.yaml"), []byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nclusterr: typo\n"), 0o644)
	out, err := sync()
	if err == nil || !strings.Contains(out, "NOT installing config.yaml") {
		t.Errorf("sync of a malformed config: %v\n%s\nwant a refusal", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "config.yaml")); string(b) != good {
		t.Errorf("after a refused config the node's config = %q, want the previous one kept", b)
	}
	os.WriteFile(filepath.Join(src, "config.yaml"), []byte(good), 0o644)

	// The bundle and its signature are copied as they are (the daemon checks them).
	os.WriteFile(filepath.Join(bundleSrc, "bundle.yaml"), []byte("bundle v1\n"), 0o644)
	os.WriteFile(filepath.Join(bundleSrc, "bundle.yaml.sig"), []byte("sig v1\n"), 0o644)
	out, err = sync()
	if err != nil || !strings.Contains(out, "installed "+dst+"/bundle/bundle.yaml.sig\nnri-csig-sync: installed "+dst+"/bundle/bundle.yaml\n") {
		t.Errorf("sync of a bundle (signature first): %v\n%s", err, out)
	}
	for f, want := range map[string]string{"bundle.yaml": "bundle v1\n", "bundle.yaml.sig": "sig v1\n"} {
		if b, _ := os.ReadFile(filepath.Join(dst, "bundle", f)); string(b) != want {
			t.Errorf("node's bundle/%s = %q, want %q", f, b, want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dst, ".staging", "*")); len(left) != 0 {
		t.Errorf("staging files left behind: %v", left)
	}
	if out, err := sync(); err != nil || out != "" {
		t.Errorf("sync with nothing changed: %v, output %q; want a silent no-op", err, out)
	}
}

// The maintainer scripts drive systemd as deb and rpm call them: enable and
// start on first install, restart on upgrade, stop and disable on removal,
// nothing on the old package's side of an upgrade. (The dpkg round trip in
// integration/package_test.go runs them for real, without systemd.)
func TestMaintainerScripts(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "systemctl")
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\n"), 0o755)
	start := "daemon-reload|enable nri-csig.service nri-csig-reload.path|--no-block start nri-csig.service nri-csig-reload.path"
	restart := "daemon-reload|--no-block try-restart nri-csig.service"
	stop := "disable --now nri-csig-reload.path nri-csig.service nri-csig-preinstalled-check.timer"
	for _, tc := range []struct {
		script string
		args   []string
		want   string
	}{
		{"postinstall.sh", []string{"configure", ""}, start},
		{"postinstall.sh", []string{"configure", "0.1.0"}, restart},
		{"postinstall.sh", []string{"1"}, start},
		{"postinstall.sh", []string{"2"}, restart},
		{"preremove.sh", []string{"remove"}, stop},
		{"preremove.sh", []string{"upgrade", "0.2.0"}, ""},
		{"preremove.sh", []string{"0"}, stop},
		{"preremove.sh", []string{"1"}, ""},
		{"postremove.sh", []string{"remove"}, "daemon-reload"},
		{"postremove.sh", []string{"1"}, "daemon-reload"},
	} {
		t.Run(tc.script+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			os.Remove(calls)
			cmd := exec.Command("sh", append([]string{filepath.Join("scripts", tc.script)}, tc.args...)...)
			cmd.Env = append(os.Environ(), "NRI_CSIG_TEST_SYSTEMCTL="+fake, "DPKG_ROOT=")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %q: %v\n%s", tc.script, tc.args, err, out)
			}
			b, _ := os.ReadFile(calls)
			if got := strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "|"); got != tc.want {
				t.Errorf("%s %q called systemctl %q, want %q", tc.script, tc.args, got, tc.want)
			}
		})
	}
}
