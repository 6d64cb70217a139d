//go:build !nodeonly

package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/acrcred/acrfake"
)

// The subcommand speaks the exec protocol on stdin/stdout, with the
// instance from $ACR_INSTANCE_ID and credentials from the default chain
// (here the fake's RAM-role credentials endpoint).
func TestACRCredentialProviderCommand(t *testing.T) {
	fake := acrfake.New()
	t.Cleanup(fake.Close)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "")
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "")
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_URI", fake.CredentialsURL())
	t.Setenv("ACR_INSTANCE_ID", acrfake.InstanceID)
	root := New()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"demo-registry.cn-hangzhou.cr.aliyuncs.com/team/app"}`))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"acr-credential-provider", "--endpoint", "http://" + fake.Endpoint})
	if err := root.Execute(); err != nil {
		t.Fatalf("acr-credential-provider: %v\n%s", err, errOut.String())
	}
	var resp struct {
		Auth map[string]struct{ Username, Password string }
	}
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	a := resp.Auth["demo-registry.cn-hangzhou.cr.aliyuncs.com"]
	if !fake.Valid(a.Username, a.Password) {
		t.Errorf("answer %s: want a login the fake issued", out.String())
	}
	if strings.Contains(errOut.String(), a.Password) {
		t.Error("the token appeared on stderr")
	}
}

func TestACRCredentialProviderHelpTeaches(t *testing.T) {
	out := mustRun(t, "acr-credential-provider", "--help")
	for _, want := range []string{"RAM role", "cr:GetAuthorizationToken", "CredentialProviderConfig", "registries.credentialProviders", "--instance-id", "ln -s"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}
