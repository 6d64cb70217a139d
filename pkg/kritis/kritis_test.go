package kritis

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func load(t *testing.T) (*Objects, []Running) {
	t.Helper()
	data, err := os.ReadFile("testdata/kritis-list.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var objs Objects
	if err := objs.Parse("kritis-list.yaml", data); err != nil {
		t.Fatal(err)
	}
	crictl, err := os.ReadFile("testdata/crictl-images.txt")
	if err != nil {
		t.Fatal(err)
	}
	running, notes, err := ParseRunning(crictl)
	if err != nil {
		t.Fatal(err)
	}
	if len(running) != 4 || len(notes) != 1 || !strings.Contains(notes[0], "--no-trunc") {
		t.Fatalf("ParseRunning(crictl) = %d images, notes %q; want 4 and one note about the truncated digest", len(running), notes)
	}
	return &objs, running
}

// TestImportGolden: the documented kritis objects import to a bundle that
// ParseBundle accepts, with what maps and what does not in the plan.
func TestImportGolden(t *testing.T) {
	objs, running := load(t)
	plan, err := Map(objs, Options{Cluster: "prod-1", Region: "cn-hangzhou", Running: running, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	b := policy.NewBundle("kritis")
	if err := plan.Apply(b); err != nil {
		t.Fatal(err)
	}
	b.Touch()
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := policy.ParseBundle("imported", data)
	if err != nil {
		t.Fatalf("ParseBundle(imported) = %v\n%s", err, data)
	}
	golden := filepath.Join("testdata", "bundle.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(data) {
		t.Errorf("imported bundle differs from %s (run with -update to accept):\n%s", golden, data)
	}

	if len(parsed.Witnesses) != 2 || parsed.Witness("demo-aa") == nil || parsed.Witness("qa-aa") == nil {
		t.Fatalf("witnesses = %d; want demo-aa and qa-aa", len(parsed.Witnesses))
	}
	k := parsed.Witness("demo-aa").Keys[0]
	if k.Ref != "alikms://cn-hangzhou/4a2ef103-5aa3-4220-9c1e-7d6f0b8a9e21" || k.KeyID != "4a2ef103-5aa3-4220-9c1e-7d6f0b8a9e21" ||
		!strings.Contains(parsed.Witness("demo-aa").Description, "namespaces/demo-aa") {
		t.Errorf("demo-aa key = %+v; want the KMS reference from publicKeyId and the noteReference", k)
	}
	pay := parsed.Policy("payments.payments-gap")
	if pay == nil || pay.Threshold != 2 || len(pay.Witnesses) != 2 || pay.Mode != policy.Audit || !pay.Enabled ||
		pay.Clusters[0] != "prod-1" || pay.Namespaces[0] != "payments" {
		t.Fatalf("payments policy = %+v; want 2-of-2, audit, enabled, prod-1/payments", pay)
	}
	if parsed.Policy("legacy.orphan-gap") != nil || len(parsed.Policies) != 2 {
		t.Errorf("policies = %d; the policy naming a missing authority must not be imported", len(parsed.Policies))
	}
	// pause and coredns in both covered namespaces (crictl knows none), busybox in default.
	if len(parsed.Exemptions) != 5 {
		t.Fatalf("exemptions = %d; want 5", len(parsed.Exemptions))
	}
	for _, e := range parsed.Exemptions {
		if !e.Expires.Equal(now.Add(14 * 24 * time.Hour)) {
			t.Errorf("exemption %s expires %v; want %v", e.Name, e.Expires, now.Add(14*24*time.Hour))
		}
		if e.ImageDigest == "sha256:"+strings.Repeat("4", 64) {
			t.Errorf("exemption %s exempts registry.example.com/app/web, which no pattern names", e.Name)
		}
	}

	text := planText(plan)
	for _, want := range []string{
		`AttestationAuthority broken-aa: not mapped`,
		`GenericAttestationPolicy legacy/orphan-gap: not mapped: AttestationAuthority deleted-aa`,
		`pattern "registry*.*.aliyuncs.com/acs/*": not mapped`,
		`pattern "registry.example.com/tools/busybox:1.36" (namespace default): not mapped`,
		`4 running digests exempted until 2026-12-15T12:00:00Z`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("plan does not contain %q:\n%s", want, text)
		}
	}
}

func planText(p *Plan) string {
	var b strings.Builder
	for _, l := range p.Lines {
		b.WriteString(l.Object + ": " + l.Text + "\n")
	}
	return b.String()
}

// TestPatternsWithoutRunning: every pattern is reported and nothing exempted.
func TestPatternsWithoutRunning(t *testing.T) {
	objs, _ := load(t)
	plan, err := Map(objs, Options{Cluster: "c", Enforce: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Exemptions) != 0 {
		t.Fatalf("exemptions without running digests: %d", len(plan.Exemptions))
	}
	var patterns int
	for _, l := range plan.Lines {
		if strings.Contains(l.Object, "pattern") {
			patterns++
			if l.Mapped || !strings.Contains(l.Text, "--running-digests") {
				t.Errorf("pattern line %+v; want not mapped, pointing at --running-digests", l)
			}
		}
	}
	if patterns != len(objs.Patterns) || patterns != 2 {
		t.Errorf("reported %d patterns; want all %d", patterns, len(objs.Patterns))
	}
	for _, sp := range plan.Policies {
		if sp.Mode != policy.Enforce {
			t.Errorf("policy %s mode %s with Enforce; want enforce", sp.Name, sp.Mode)
		}
	}
	for _, w := range plan.Witnesses {
		if w.Keys[0].Ref != "" {
			t.Errorf("witness %s has KMS ref %q without a region", w.Name, w.Keys[0].Ref)
		}
	}
	if _, err := Map(objs, Options{}); err == nil {
		t.Error("Map without a cluster succeeded")
	}
}

func TestRunningFromPods(t *testing.T) {
	d := strings.Repeat("ab", 32)
	pods := `{"apiVersion":"v1","kind":"List","items":[
	 {"metadata":{"name":"web-1","namespace":"default"},"status":{"containerStatuses":[
	   {"name":"web","image":"registry.example.com/tools/busybox:1.36","imageID":"registry.example.com/tools/busybox@sha256:` + d + `"},
	   {"name":"side","image":"x:1","imageID":""}]}},
	 {"metadata":{"name":"p","namespace":"payments"},"status":{"containerStatuses":[
	   {"name":"web","image":"registry.example.com/tools/busybox:1.36","imageID":"docker-pullable://registry.example.com/tools/busybox@sha256:` + d + `"}]}}]}`
	running, notes, err := ParseRunning([]byte(pods))
	if err != nil || len(running) != 2 || len(notes) != 1 {
		t.Fatalf("ParseRunning(pods) = %+v, %q, %v; want 2 images and a note for the empty imageID", running, notes, err)
	}
	objs, _ := load(t)
	plan, err := Map(objs, Options{Cluster: "c", Running: running, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// The busybox pattern is limited to default: the payments pod is not exempted.
	if len(plan.Exemptions) != 1 || plan.Exemptions[0].Namespace != "default" || plan.Exemptions[0].ImageDigest != "sha256:"+d {
		t.Fatalf("exemptions = %+v; want busybox in default only", plan.Exemptions)
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, image string
		want           bool
	}{
		{"registry.example.com/app:v1", "registry.example.com/app:v1", true},
		{"registry.example.com/app:v1", "registry.example.com/app:v2", false},
		{"registry.example.com/acs/*", "registry.example.com/acs/pause:3.9", true},
		{"registry.example.com/acs/*", "registry.example.com/acs/a/b:1", false},
		{"registry*.*.aliyuncs.com/acs/*", "registry-vpc.cn-beijing.aliyuncs.com/acs/pause:3.9", true},
		{"registry*.*.aliyuncs.com/acs/*", "registry.evil.com/x.aliyuncs.com/acs/pause", false},
		{"registry.example.com/acs/*", "registry.example.com/acs/pause@sha256:" + strings.Repeat("1", 64), true},
	} {
		if got := Match(tc.pattern, tc.image); got != tc.want {
			t.Errorf("Match(%q, %q) = %v; want %v", tc.pattern, tc.image, got, tc.want)
		}
	}
}

func TestBadKeyDataIsReported(t *testing.T) {
	var o Objects
	err := o.Parse("x.yaml", []byte("apiVersion: kritis.grafeas.io/v1beta1\nkind: AttestationAuthority\nmetadata: {name: a}\nspec: {publicKeyData: '%%%'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Map(&o, Options{Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Witnesses) != 0 || len(plan.Lines) != 1 || plan.Lines[0].Mapped || !strings.Contains(plan.Lines[0].Text, "publicKeyData") ||
		!strings.Contains(plan.Lines[0].Text, "x.yaml:") {
		t.Fatalf("plan = %+v; want one unmapped line naming publicKeyData and the file", plan.Lines)
	}
}
