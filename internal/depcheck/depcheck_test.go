// Package depcheck keeps each layer's imports to what it may use: one
// allow-list per package (GGCR's pkg/registry/depcheck_test.go pattern), so
// that a new import fails here until someone decides it belongs. Standard
// library imports are always allowed.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/nri-csig/nri-csig/"

// allowed lists, per package of the node path and the model, the import
// path prefixes (outside the standard library) it may import directly.
var allowed = map[string][]string{
	// NRI glue: the only package that speaks NRI.
	"pkg/plugin": {"github.com/containerd/nri/", module + "pkg/audit", module + "pkg/guard", module + "pkg/policy"},
	// The model: standard library, YAML, the crypto vocabulary, one digest check.
	"pkg/policy":   {"go.yaml.in/yaml/v3", module + "pkg/keys", module + "internal/registry/check"},
	"pkg/decision": {module + "pkg/policy"},
	"pkg/guard":    {module + "pkg/policy"},
	// The crypto vocabulary imports no key provider (no KMS SDK).
	"pkg/keys":      {},
	"pkg/signature": {module + "internal/registry/check", "github.com/sigstore/protobuf-specs/", "google.golang.org/protobuf/"},
	"pkg/verify": {"github.com/google/go-containerregistry/pkg/authn", "github.com/google/go-containerregistry/pkg/name",
		module + "internal/digestbytes", module + "internal/registry", module + "pkg/keys", module + "pkg/signature"},
	// Notary Project verification: the only package that imports notation-go.
	"pkg/notaryverify": {"github.com/notaryproject/notation-go", "github.com/notaryproject/notation-core-go/",
		"github.com/opencontainers/image-spec/", module + "pkg/policy", module + "pkg/signature", module + "pkg/verify"},
	// Notary Project signing (CLI only): notation-core-go, no notation-go.
	"pkg/notarysign": {"github.com/google/go-containerregistry/", "github.com/notaryproject/notation-core-go/",
		"github.com/opencontainers/go-digest", "github.com/opencontainers/image-spec/", module + "pkg/keys", module + "pkg/signature"},
	// The one place that knows each witness kind's verifier (the x509 and
	// sigstore verifier packages join this list).
	"pkg/witnessverify": {module + "pkg/keyless", module + "pkg/notaryverify", module + "pkg/policy", module + "pkg/verify"},
	// nri-csigd's certificate verifier process: its protocol, client and
	// server, with the verifiers given by the caller (never imported).
	"pkg/certchild": {module + "pkg/policy", module + "pkg/signature", module + "pkg/verify"},
	// Keyless Sigstore: sigstore-go's offline verifier and bundle/trusted-root
	// types only (never its TUF client or a Rekor client: no network).
	"pkg/keyless": {"github.com/sigstore/sigstore-go/pkg/bundle", "github.com/sigstore/sigstore-go/pkg/root",
		"github.com/sigstore/sigstore-go/pkg/verify", "github.com/sigstore/protobuf-specs/", module + "pkg/policy", module + "pkg/signature", module + "pkg/verify"},
	"pkg/audit":      {"github.com/coreos/go-systemd/v22/journal", module + "pkg/policy"},
	"pkg/nodeconfig": {"go.yaml.in/yaml/v3", module + "pkg/guard", module + "pkg/policy"},
	"pkg/imagestore": {"github.com/containerd/containerd/", "github.com/containerd/errdefs", "github.com/containerd/typeurl/",
		"github.com/google/go-containerregistry/pkg/name", "github.com/opencontainers/go-digest", "github.com/opencontainers/image-spec/",
		"golang.org/x/sync/errgroup", "google.golang.org/grpc", // bounded concurrent reads; containerd's content API (ContentAPI)
		module + "internal/digestbytes"},
	"pkg/watch": {"github.com/containerd/containerd/api/", "github.com/containerd/containerd/v2/core/", "github.com/containerd/containerd/v2/pkg/namespaces",
		"github.com/containerd/errdefs", "github.com/containerd/typeurl/", "github.com/opencontainers/runtime-spec/",
		module + "internal/ctrdconn", module + "pkg/audit", module + "pkg/imagestore", module + "pkg/policy"},
	// containerd's gRPC API as nri-csigd calls it, without containerd's Go
	// client package (TestDaemonBuildLinksNoContainerdClient).
	"internal/ctrdconn": {"github.com/containerd/containerd/api/", "github.com/containerd/containerd/v2/core/",
		"github.com/containerd/containerd/v2/defaults", "github.com/containerd/containerd/v2/pkg/dialer",
		"github.com/containerd/containerd/v2/pkg/namespaces", "github.com/containerd/containerd/v2/pkg/protobuf",
		"github.com/containerd/errdefs", "github.com/containerd/platforms", "github.com/containerd/typeurl/",
		"github.com/opencontainers/go-digest", "github.com/opencontainers/image-spec/", "google.golang.org/grpc"},
	"pkg/bundleoci": {"github.com/google/go-containerregistry/", module + "internal/registry", module + "pkg/policy"},
	// kubelet's credential provider plugins: the API types mirrored (wire.go,
	// pinned to k8s.io/kubelet by its tests), no apimachinery, no cloud SDK.
	"pkg/credprovider": {"github.com/google/go-containerregistry/pkg/authn", "go.yaml.in/yaml/v3", "golang.org/x/sync/singleflight"},
	// The ACR credential provider (a CLI subcommand): the ACR API SDK and
	// the credentials chain; only the CLI imports it (TestACRProviderOnlyInCLI).
	"pkg/acrcred": {"github.com/alibabacloud-go/cr-20181201/v2/client", "github.com/alibabacloud-go/darabonba-openapi/v2/client",
		"github.com/alibabacloud-go/tea/", "github.com/aliyun/credentials-go/credentials", "k8s.io/apimachinery/pkg/apis/meta/v1",
		"k8s.io/kubelet/pkg/apis/credentialprovider/v1", module + "internal/registry/check"},
	// The node's registry credential sources, shared by the daemon and the CLI.
	"pkg/regcreds": {module + "internal/registry", module + "pkg/credprovider", module + "pkg/nodeconfig"},
	"pkg/bundlestore": {"github.com/google/go-containerregistry/pkg/name", module + "internal/atomicfile", module + "internal/registry",
		module + "pkg/bundleoci", module + "pkg/keys", module + "pkg/policy"},
}

// forbidden reports the imports of pkg that its allow-list does not name.
func forbidden(imports, allow []string) []string {
	var bad []string
	for _, imp := range imports {
		if !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
			continue // standard library
		}
		ok := false
		for _, a := range allow {
			if imp == a || strings.HasPrefix(imp, a) && (strings.HasSuffix(a, "/") || strings.HasPrefix(imp[len(a):], "/")) {
				ok = true
				break
			}
		}
		if !ok {
			bad = append(bad, imp)
		}
	}
	return bad
}

func TestImportsAllowed(t *testing.T) {
	for pkg, allow := range allowed {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, module+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, imp := range forbidden(strings.Fields(string(out)), allow) {
			t.Errorf("%s imports %s, which its allow-list in internal/depcheck does not name; keep the layer's job or extend the list deliberately", pkg, imp)
		}
	}
}

// The checker refuses what a list does not name: a fixture with the KMS SDK
// in the model and containerd in the decision.
func TestForbiddenCatchesBadImports(t *testing.T) {
	bad := forbidden([]string{"fmt", "go.yaml.in/yaml/v3", "github.com/alibabacloud-go/kms-20160120/v3/client", module + "pkg/keysx"}, allowed["pkg/policy"])
	if len(bad) != 2 || bad[0] != "github.com/alibabacloud-go/kms-20160120/v3/client" || bad[1] != module+"pkg/keysx" {
		t.Errorf("forbidden = %v; want the KMS client and pkg/keysx refused", bad)
	}
	if bad := forbidden([]string{"github.com/containerd/containerd/v2/client"}, allowed["pkg/decision"]); len(bad) != 1 {
		t.Errorf("forbidden = %v; want containerd refused in the decision", bad)
	}
}

// TestNodeLinksNoKMS: only pkg/plugin speaks NRI; nodes verify with public keys from the bundle and never
// call KMS, so the node path must not link the Alibaba Cloud SDK, even
// indirectly (only pkg/keyref, used by the signing CLI, opens KMS keys), and
// the model links no registry client.
func TestNodeLinksNoKMS(t *testing.T) {
	for _, pkg := range []string{"pkg/daemon", "pkg/plugin", "pkg/verify", "pkg/policy", "pkg/decision", "pkg/keys", "pkg/bundlestore", "pkg/credprovider"} {
		deps, err := exec.Command("go", "list", "-deps", module+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(deps)) {
			if strings.HasPrefix(dep, "github.com/alibabacloud-go/") || strings.HasPrefix(dep, "github.com/aliyun/") {
				t.Errorf("%s links %s; the node must not link a KMS SDK (open keys through pkg/keyref in the CLI only)", pkg, dep)
			}
			if pkg != "pkg/daemon" && pkg != "pkg/plugin" && strings.HasPrefix(dep, "github.com/containerd/nri") {
				t.Errorf("%s links %s; only pkg/plugin speaks NRI", pkg, dep)
			}
			if (pkg == "pkg/policy" || pkg == "pkg/decision") && strings.HasPrefix(dep, "github.com/google/go-containerregistry/") {
				t.Errorf("%s links %s; the model moves no bytes (OCI is pkg/bundleoci's)", pkg, dep)
			}
		}
	}
}

// TestACRProviderOnlyInCLI: the ACR SDK enters the binary through the
// acr-credential-provider subcommand only; the daemon runs it as a plugin
// process and never links it.
func TestACRProviderOnlyInCLI(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		for _, imp := range fields[1:] {
			if imp == module+"pkg/acrcred" && fields[0] != module+"cmd/nri-csig/cli" {
				t.Errorf("%s imports pkg/acrcred; only cmd/nri-csig/cli may (the daemon executes the plugin instead)", fields[0])
			}
			if strings.HasPrefix(imp, "github.com/alibabacloud-go/cr-") && fields[0] != module+"pkg/acrcred" {
				t.Errorf("%s imports the ACR SDK %s; only pkg/acrcred may", fields[0], imp)
			}
		}
	}
}

// linked lists what ./cmd/nri-csig links when built with tags.
func linked(t *testing.T, tags string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-tags", tags, "-deps", module+"cmd/nri-csig").Output()
	if err != nil {
		t.Fatalf("go list -tags %q -deps ./cmd/nri-csig: %v", tags, err)
	}
	deps := map[string]bool{}
	for _, d := range strings.Fields(string(out)) {
		deps[d] = true
	}
	return deps
}

// checkLinks fails for each package of want that the build does not link,
// and for each linked package that is, or starts with a prefix (ending in
// "/") of, refuse.
func checkLinks(t *testing.T, binary string, deps map[string]bool, want, refuse []string) {
	t.Helper()
	for _, w := range want {
		if !deps[w] {
			t.Errorf("%s does not link %s", binary, w)
		}
	}
	for dep := range deps {
		for _, r := range refuse {
			if dep == r || strings.HasSuffix(r, "/") && strings.HasPrefix(dep, r) {
				t.Errorf("%s links %s", binary, dep)
			}
		}
	}
}

// The operator's side: the KMS and ACR SDKs, signing, kritis import.
var operatorOnly = []string{"github.com/alibabacloud-go/", "github.com/aliyun/", module + "pkg/acrcred", module + "pkg/keyref",
	module + "pkg/keys/alikms", module + "pkg/sign", module + "pkg/notarysign", module + "pkg/kritis"}

// The certificate witnesses' verifiers.
var certVerifiers = []string{module + "pkg/witnessverify", module + "pkg/keyless", module + "pkg/notaryverify"}

// What only the certificate witnesses' verifiers link.
var certLibraries = []string{module + "pkg/keyless", module + "pkg/notaryverify", "github.com/notaryproject/notation-go",
	"github.com/notaryproject/notation-go/", "github.com/sigstore/sigstore-go/"}

// nri-csigd (-tags nodeonly), the node daemon's binary, links the daemon and
// nothing only the operator's commands use: its resident memory is mostly
// its binary's pages.
func TestDaemonBuildLinksNoOperatorCommands(t *testing.T) {
	want := []string{module + "pkg/daemon", module + "pkg/plugin", module + "pkg/witnessverify", module + "pkg/certchild"}
	checkLinks(t, "nri-csigd", linked(t, "nodeonly"), want, operatorOnly)
}

// nri-csigd links neither notation-go nor sigstore-go: most nodes have key
// witnesses only, and the certificate witnesses' verifiers run in its child
// process, the full nri-csig (pkg/certchild).
func TestDaemonBuildLinksNoCertificateVerifiers(t *testing.T) {
	checkLinks(t, "nri-csigd", linked(t, "nodeonly"), []string{module + "pkg/certchild"}, certLibraries)
}

// nri-csigd links no Kubernetes API machinery: k8s.io/apimachinery's
// runtime and serializers (with cbor, json-iterator, structured-merge-diff
// and klog) are about 6 MB of binary, mostly resident in every daemon, for
// three small JSON documents; pkg/credprovider mirrors kubelet's types
// instead (wire.go). The CRI API's message types are all it takes from k8s.io.
func TestDaemonBuildLinksNoKubernetesAPIMachinery(t *testing.T) {
	refuse := []string{"k8s.io/apimachinery/", "k8s.io/kubelet/", "k8s.io/klog/", "k8s.io/client-go/", "k8s.io/kube-openapi/",
		"sigs.k8s.io/structured-merge-diff/", "github.com/json-iterator/go", "github.com/fxamacker/cbor/"}
	checkLinks(t, "nri-csigd", linked(t, "nodeonly"), []string{module + "pkg/credprovider", "k8s.io/cri-api/pkg/apis/runtime/v1"}, refuse)
}

// nri-csigd calls containerd's API through internal/ctrdconn: containerd's
// Go client package is ~1 MB of binary and ~1.5 MiB of resident memory (its
// pull, transfer, unpack and sandbox machinery) for a handful of calls.
func TestDaemonBuildLinksNoContainerdClient(t *testing.T) {
	checkLinks(t, "nri-csigd", linked(t, "nodeonly"), []string{module + "internal/ctrdconn", module + "pkg/watch"},
		[]string{"github.com/containerd/containerd/v2/client"})
}

// nri-csig (no tag) is everything: the daemon, the certificate verifiers and
// the operator's SDKs.
func TestFullBinaryLinksEverything(t *testing.T) {
	want := append([]string{module + "pkg/daemon", module + "pkg/acrcred", module + "pkg/keys/alikms", module + "pkg/notarysign",
		module + "pkg/kritis", "github.com/alibabacloud-go/kms-20160120/v3/client", module + "pkg/certchild",
		"github.com/notaryproject/notation-go/verifier", "github.com/sigstore/sigstore-go/pkg/verify"}, certVerifiers...)
	checkLinks(t, "nri-csig", linked(t, ""), want, nil)
}

// nri-csig-cli (./cmd/nri-csig built with -tags nodaemon) links none of the
// daemon's machinery and none of the certificate witnesses' (notation-go,
// sigstore-go; it runs nri-csig for those): that binary exists for the
// memory its smaller binary saves on every run (BENCHMARKS.md's verify
// lines). It keeps the KMS and ACR SDKs its commands use.
func TestCLIWithoutDaemonLinksNoDaemon(t *testing.T) {
	refuse := append([]string{module + "pkg/daemon", module + "pkg/plugin", module + "pkg/watch", module + "pkg/notarysign",
		"github.com/containerd/containerd/v2/client", "google.golang.org/grpc", "github.com/containerd/nri/", "github.com/prometheus/client_golang/",
		"github.com/notaryproject/notation-go", "github.com/notaryproject/notation-go/", "github.com/sigstore/sigstore-go/"}, certVerifiers...)
	want := []string{module + "pkg/acrcred", module + "pkg/keys/alikms", module + "pkg/kritis", module + "pkg/verify", module + "pkg/policy"}
	checkLinks(t, "nri-csig-cli", linked(t, "nodaemon"), want, refuse)
}
