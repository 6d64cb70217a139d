//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/internal/toolcache"
)

// pkgVersion is the version the test packages carry (and the binary prints).
const pkgVersion = "0.0.1~it1"

// "make package" builds the .deb and .rpm; the .deb installs into a throwaway
// root with dpkg (maintainer scripts included, chrootless, honouring
// DPKG_ROOT), the packaged binary runs, systemd-analyze verifies the units,
// an upgrade keeps the operator's config and the containerd drop-in goes
// away with the package while the config stays until purge.
func TestPackages(t *testing.T) {
	if err := testbed.EnsureDebianPackages(map[string]string{"dpkg": "dpkg-deb", "systemd": "systemd-analyze", "rpm": "rpm"}); err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	make := exec.Command("make", "-C", "..", "package", "DIST="+dist, "PKG_VERSION="+pkgVersion)
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("make package wrote %v %v; want one .deb and one .rpm", debs, rpms)
	}
	deb, rpm := debs[0], rpms[0]

	fields := mustRun(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture")
	arch := strings.TrimSpace(mustRun(t, "go", "env", "GOARCH"))
	if want := fmt.Sprintf("Package: nri-csig\nVersion: %s\nArchitecture: %s\n", pkgVersion, arch); fields != want {
		t.Errorf(".deb control fields:\n%s\nwant:\n%s", fields, want)
	}
	conffiles := strings.Fields(mustRun(t, "dpkg-deb", "-I", deb, "conffiles"))
	if want := []string{"/etc/default/nri-csig", "/etc/nri-csig/config.yaml"}; !slices.Equal(conffiles, want) {
		t.Errorf(".deb conffiles = %v, want %v (and never the containerd drop-in)", conffiles, want)
	}

	// A throwaway root with an empty dpkg database.
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/available"), nil, 0o644)
	dpkg := func(args ...string) string {
		t.Helper()
		return mustRun(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
	}
	out := dpkg("-i", deb)
	if !strings.Contains(out, "config.toml does not exist, so containerd ignores /etc/containerd/conf.d/50-nri-csig.toml") {
		t.Errorf("postinst did not warn that containerd has no main config importing the drop-in:\n%s", out)
	}
	if s := mustRun(t, "dpkg", "--root="+root, "-s", "nri-csig"); !strings.Contains(s, "Status: install ok installed") {
		t.Errorf("dpkg -s nri-csig:\n%s", s)
	}
	for path, mode := range map[string]os.FileMode{
		"usr/bin/nri-csig":                            0o755,
		"usr/bin/nri-csigd":                           0o755,
		"usr/bin/nri-csig-cli":                        0o755,
		"usr/lib/systemd/system/nri-csig.service":     0o644,
		"usr/lib/systemd/system/nri-csig-reload.path": 0o644,
		"etc/nri-csig/config.yaml":                    0o644,
		"etc/default/nri-csig":                        0o644,
		"etc/containerd/conf.d/50-nri-csig.toml":      0o644,
		"usr/share/nri-csig/preinstalled/50-nri-csig": 0o755,
		"usr/share/nri-csig/kubernetes/nri-csig.yaml": 0o644,
		"usr/share/doc/nri-csig/OPERATIONS.md":        0o644,
		"var/lib/nri-csig":                            0o700 | os.ModeDir,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("installed package lacks /%s: %v", path, err)
			continue
		}
		if fi.Mode() != mode {
			t.Errorf("/%s mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	for installed, repo := range map[string]string{
		"usr/lib/systemd/system/nri-csig.service": "../systemd/nri-csig.service",
		"etc/containerd/conf.d/50-nri-csig.toml":  "../packaging/containerd/50-nri-csig.toml",
		"etc/nri-csig/config.yaml":                "../packaging/config.yaml",
	} {
		a, _ := os.ReadFile(filepath.Join(root, installed))
		b, _ := os.ReadFile(repo)
		if !bytes.Equal(a, b) {
			t.Errorf("installed /%s differs from %s", installed, repo)
		}
	}

	bin := filepath.Join(root, "usr/bin/nri-csig")
	if v := mustRun(t, bin, "version"); !strings.HasPrefix(v, "nri-csig "+pkgVersion+" ") {
		t.Errorf("packaged nri-csig version = %q, want version %s", v, pkgVersion)
	}
	if out := mustRun(t, bin, "check-config", filepath.Join(root, "etc/nri-csig/config.yaml")); !strings.Contains(out, ": ok") {
		t.Errorf("the packaged example config: %s", out)
	}
	// nri-csigd, which the unit and the pre-installed wrapper run: the same
	// version, the daemon's commands only.
	daemonBin := filepath.Join(root, "usr/bin/nri-csigd")
	if v := mustRun(t, daemonBin, "version"); !strings.HasPrefix(v, "nri-csig "+pkgVersion+" ") {
		t.Errorf("packaged nri-csigd version = %q, want version %s", v, pkgVersion)
	}
	if out := mustRun(t, daemonBin, "check-config", filepath.Join(root, "etc/nri-csig/config.yaml")); !strings.Contains(out, ": ok") {
		t.Errorf("nri-csigd check-config of the packaged example config: %s", out)
	}
	if out, err := exec.Command(daemonBin, "sign").CombinedOutput(); err == nil || !strings.Contains(string(out), `run "nri-csig sign"`) {
		t.Errorf("nri-csigd sign: %v\n%s\nwant a refusal naming nri-csig sign", err, out)
	}
	// nri-csig-cli: the same version, the commands without the daemon's.
	lite := filepath.Join(root, "usr/bin/nri-csig-cli")
	if v := mustRun(t, lite, "version"); !strings.HasPrefix(v, "nri-csig "+pkgVersion+" ") {
		t.Errorf("packaged nri-csig-cli version = %q, want version %s", v, pkgVersion)
	}
	if out, err := exec.Command(lite, "run").CombinedOutput(); err == nil || !strings.Contains(string(out), `run "nri-csigd run"`) {
		t.Errorf("nri-csig-cli run: %v\n%s\nwant a refusal naming nri-csigd run", err, out)
	}

	verifyUnits(t, root)

	// Upgrade: the operator's config survives, the package version moves.
	cfg := filepath.Join(root, "etc/nri-csig/config.yaml")
	local := "apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: edited-by-operator\n"
	os.WriteFile(cfg, []byte(local), 0o644)
	next := filepath.Join(t.TempDir(), "next.deb")
	cache, err := toolcache.Dir() // where make package built nfpm
	if err != nil {
		t.Fatal(err)
	}
	repack := exec.Command(filepath.Join(cache, "bin", "nfpm"), "package", "--config", "packaging/nfpm.yaml", "--packager", "deb", "--target", next)
	repack.Dir = ".."
	repack.Env = append(os.Environ(), "GOARCH="+arch, "PKG_VERSION="+pkgVersion+"+next")
	if out, err := repack.CombinedOutput(); err != nil {
		t.Fatalf("nfpm (upgrade package): %v\n%s", err, out)
	}
	// This time containerd's main config imports the drop-in folder: no note.
	os.MkdirAll(filepath.Join(root, "etc/containerd"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/containerd/config.toml"), []byte("version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n"), 0o644)
	if out := dpkg("-i", next); strings.Contains(out, "nri-csig: note") {
		t.Errorf("postinst warns although containerd imports conf.d:\n%s", out)
	}
	if s := mustRun(t, "dpkg", "--root="+root, "-s", "nri-csig"); !strings.Contains(s, "Version: "+pkgVersion+"+next") {
		t.Errorf("after the upgrade dpkg -s says:\n%s", s)
	}
	if b, _ := os.ReadFile(cfg); string(b) != local {
		t.Errorf("the upgrade replaced the operator's config with:\n%s", b)
	}

	// Remove: binary, units and the containerd requirement go; config stays.
	out = dpkg("-r", "nri-csig")
	if !strings.Contains(out, "systemctl restart containerd") {
		t.Errorf("prerm does not tell the operator to restart containerd:\n%s", out)
	}
	for _, gone := range []string{"usr/bin/nri-csig", "usr/bin/nri-csigd", "usr/bin/nri-csig-cli", "usr/lib/systemd/system/nri-csig.service", "etc/containerd/conf.d/50-nri-csig.toml"} {
		if _, err := os.Stat(filepath.Join(root, gone)); err == nil {
			t.Errorf("/%s is still there after dpkg -r", gone)
		}
	}
	if b, _ := os.ReadFile(cfg); string(b) != local {
		t.Errorf("dpkg -r removed or changed the operator's config (%q)", b)
	}
	dpkg("-P", "nri-csig")
	for _, gone := range []string{"etc/nri-csig/config.yaml", "etc/default/nri-csig", "var/lib/nri-csig"} {
		if _, err := os.Stat(filepath.Join(root, gone)); err == nil {
			t.Errorf("/%s is still there after purge", gone)
		}
	}

	// The .rpm carries the same files, config files marked as such, and the scripts.
	if q := mustRun(t, "rpm", "-qp", "--queryformat", "%{NAME} %{VERSION} %{ARCH}", rpm); !strings.HasPrefix(q, "nri-csig "+pkgVersion+" ") {
		t.Errorf("rpm -qp = %q", q)
	}
	rpmFiles := strings.Fields(mustRun(t, "rpm", "-qpl", rpm))
	debFiles := debFileList(t, deb)
	if !slices.Equal(regularOnly(rpmFiles, debFiles), debFiles) {
		t.Errorf("rpm files %v\ndeb files %v", rpmFiles, debFiles)
	}
	if c := strings.Fields(mustRun(t, "rpm", "-qpc", rpm)); !slices.Equal(c, []string{"/etc/default/nri-csig", "/etc/nri-csig/config.yaml"}) {
		t.Errorf("rpm config files = %v", c)
	}
	if s := mustRun(t, "rpm", "-qp", "--scripts", rpm); !strings.Contains(s, "postinstall scriptlet") || !strings.Contains(s, "preuninstall scriptlet") {
		t.Errorf("rpm scripts:\n%s", s)
	}
}

// verifyUnits runs systemd-analyze verify on the installed units inside the
// throwaway root (which gets the host's targets, kill and systemctl, as a
// real root would have), with a broken copy as a control, and checks the
// hardening with systemd-analyze security.
func verifyUnits(t *testing.T, root string) {
	t.Helper()
	unitDir := filepath.Join(root, "usr/lib/systemd/system")
	targets, _ := filepath.Glob("/usr/lib/systemd/system/*.target")
	for _, tg := range targets {
		if b, err := os.ReadFile(tg); err == nil {
			os.WriteFile(filepath.Join(unitDir, filepath.Base(tg)), b, 0o644)
		}
	}
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	for _, tool := range []string{"kill", "systemctl"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(root, "usr/bin", tool), b, 0o755)
	}
	units := []string{"/usr/lib/systemd/system/nri-csig.service", "/usr/lib/systemd/system/nri-csig-reload.path", "/usr/lib/systemd/system/nri-csig-reload.service",
		"/usr/lib/systemd/system/nri-csig-preinstalled-check.service", "/usr/lib/systemd/system/nri-csig-preinstalled-check.timer"}
	out, err := exec.Command("systemd-analyze", append([]string{"verify", "--root=" + root}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Control: the same check notices a broken unit.
	b, _ := os.ReadFile(filepath.Join(unitDir, "nri-csig.service"))
	os.WriteFile(filepath.Join(unitDir, "broken.service"), bytes.Replace(b, []byte("\nType=notify"), []byte("\nType=notfy"), 1), 0o644)
	out, _ = exec.Command("systemd-analyze", "verify", "--root="+root, "/usr/lib/systemd/system/broken.service").CombinedOutput()
	if !strings.Contains(string(out), "notfy") {
		t.Errorf("control: systemd-analyze verify did not report a broken Type=:\n%s", out)
	}
	os.Remove(filepath.Join(unitDir, "broken.service"))

	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--root="+root, "--threshold=25", "nri-csig.service").CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for nri-csig.service: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Errorf("systemd-analyze security (threshold 2.5): %v\n%s", err, out)
	} else {
		t.Logf("systemd-analyze security: exposure %s (0 = locked down, 10 = none)", m[1])
	}
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debFileList lists the regular files and symlinks of a .deb, as /paths.
func debFileList(t *testing.T, deb string) []string {
	t.Helper()
	var files []string
	for _, l := range strings.Split(mustRun(t, "dpkg-deb", "-c", deb), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		files = append(files, strings.TrimPrefix(f[5], "."))
	}
	slices.Sort(files)
	return files
}

// regularOnly keeps the rpm paths that are files in the deb's sense (rpm -qpl
// also lists owned folders).
func regularOnly(rpmFiles, debFiles []string) []string {
	var out []string
	for _, f := range rpmFiles {
		if slices.Contains(debFiles, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}
