package acrcred

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials"

	"github.com/nri-csig/nri-csig/pkg/acrcred/acrfake"
)

// roleEnv points credentials-go's default chain at the fake's RAM-role
// credentials endpoint, and nowhere else.
func roleEnv(t *testing.T, fake *acrfake.Server) {
	t.Setenv("HOME", t.TempDir())
	for _, v := range []string{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
		"ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_CREDENTIALS_FILE", "ALIBABA_CLOUD_PROFILE"} {
		t.Setenv(v, "")
	}
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_URI", fake.CredentialsURL())
}

func request(image string) *bytes.Buffer {
	return bytes.NewBufferString(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"` + image + `"}`)
}

// With the node's RAM-role credentials, the provider answers the exec
// protocol with a login the registry accepts, cached for the token's life.
func TestServeWithRoleCredentials(t *testing.T) {
	fake := acrfake.New()
	t.Cleanup(fake.Close)
	roleEnv(t, fake)
	var out bytes.Buffer
	host := "demo-registry.cn-hangzhou.cr.aliyuncs.com"
	err := Serve(context.Background(), request(host+"/team/app"), &out, Options{InstanceID: acrfake.InstanceID, Endpoint: "http://" + fake.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		APIVersion, Kind, CacheKeyType, CacheDuration string
		Auth                                          map[string]struct{ Username, Password string }
	}
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatalf("answer %q: %v", out.String(), err)
	}
	if resp.APIVersion != apiVersion || resp.Kind != "CredentialProviderResponse" || resp.CacheKeyType != "Registry" {
		t.Errorf("answer = %s; want a v1 CredentialProviderResponse keyed by Registry", out.String())
	}
	if d, err := time.ParseDuration(resp.CacheDuration); err != nil || d < 50*time.Minute || d > 55*time.Minute {
		t.Errorf("cacheDuration = %q; want the token's hour less %s", resp.CacheDuration, ExpiryMargin)
	}
	a := resp.Auth[host]
	if !fake.Valid(a.Username, a.Password) {
		t.Errorf("auth[%s] = %q/%q; want a login the fake issued", host, a.Username, a.Password)
	}
	if fake.TokenCalls() != 1 || fake.CredentialCalls() < 1 {
		t.Errorf("fake saw %d token calls and %d credential fetches; want 1 and at least 1", fake.TokenCalls(), fake.CredentialCalls())
	}
}

func TestTokenAboutToExpireIsNotCached(t *testing.T) {
	fake := acrfake.New()
	t.Cleanup(fake.Close)
	roleEnv(t, fake)
	fake.SetTokenTTL(2 * time.Minute)
	var out bytes.Buffer
	if err := Serve(context.Background(), request("127.0.0.1:5000/app"), &out, Options{InstanceID: acrfake.InstanceID, Region: acrfake.Region, Endpoint: "http://" + fake.Endpoint}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"cacheDuration":"0s"`) {
		t.Errorf("answer = %s; want cacheDuration 0s for a token that expires within %s", out.String(), ExpiryMargin)
	}
}

// The fake checks the request signature and the STS token; failures say
// what was refused and never show a secret.
func TestRefusals(t *testing.T) {
	fake := acrfake.New()
	t.Cleanup(fake.Close)
	static := func(id, secret, token string) credentials.Credential {
		cfg := &credentials.Config{Type: ptr("sts"), AccessKeyId: ptr(id), AccessKeySecret: ptr(secret), SecurityToken: ptr(token)}
		if token == "" {
			cfg = &credentials.Config{Type: ptr("access_key"), AccessKeyId: ptr(id), AccessKeySecret: ptr(secret)}
		}
		c, err := credentials.NewCredential(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := Options{InstanceID: acrfake.InstanceID, Region: acrfake.Region, Endpoint: "http://" + fake.Endpoint}
	for name, c := range map[string]struct {
		opts Options
		want string
	}{
		"wrong secret":    {with(base, static(acrfake.RoleAccessKeyID, "wrong", acrfake.RoleSecurityToken)), "SignatureDoesNotMatch"},
		"no sts token":    {with(base, static(acrfake.RoleAccessKeyID, acrfake.RoleAccessKeySecret, "")), "MissingSecurityToken"},
		"wrong sts token": {with(base, static(acrfake.RoleAccessKeyID, acrfake.RoleAccessKeySecret, "other")), "InvalidSecurityToken.Mismatch"},
		"unknown key":     {with(base, static("LTAIunknown", "x", "y")), "InvalidAccessKeyId.NotFound"},
		"unknown instance": {func() Options {
			o := with(base, static(acrfake.RoleAccessKeyID, acrfake.RoleAccessKeySecret, acrfake.RoleSecurityToken))
			o.InstanceID = "cri-other"
			return o
		}(), "INSTANCE_NOT_EXIST"},
		"no instance":    {Options{Endpoint: base.Endpoint, Region: acrfake.Region}, "pass --instance-id"},
		"no region":      {Options{InstanceID: acrfake.InstanceID, Endpoint: base.Endpoint}, "pass --region"},
		"http elsewhere": {Options{InstanceID: acrfake.InstanceID, Region: acrfake.Region, Endpoint: "http://cr.example.com"}, "plain http is allowed only for loopback"},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := Serve(context.Background(), request("127.0.0.1:5000/app"), &out, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Serve = %v; want %q", err, c.want)
			}
			if strings.Contains(err.Error(), acrfake.RoleAccessKeySecret) || out.Len() != 0 {
				t.Errorf("error %q / answer %q show a secret or an answer", err, out.String())
			}
		})
	}
	if fake.TokenCalls() != 0 {
		t.Errorf("fake issued %d tokens to refused requests", fake.TokenCalls())
	}
}

func TestBadRequest(t *testing.T) {
	for name, c := range map[string]struct{ in, want string }{
		"garbage":     {"not json", "not a CredentialProviderRequest"},
		"old version": {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1alpha1","kind":"CredentialProviderRequest","image":"x"}`, "want credentialprovider.kubelet.k8s.io/v1"},
		"no image":    {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"}`, "names no image"},
		"oversized":   {strings.Repeat(" ", maxRequest+1), "larger than"},
	} {
		if err := Serve(context.Background(), bytes.NewBufferString(c.in), &bytes.Buffer{}, Options{InstanceID: "cri-x"}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Serve = %v; want %q", name, err, c.want)
		}
	}
}

func TestRegionFromHost(t *testing.T) {
	for host, want := range map[string]string{
		"demo-registry.cn-shanghai.cr.aliyuncs.com":        "cn-shanghai",
		"demo-registry-vpc.ap-southeast-1.cr.aliyuncs.com": "ap-southeast-1",
		"registry.cn-hangzhou.aliyuncs.com":                "",
		"127.0.0.1:5000":                                   "",
	} {
		got := ""
		if m := regionOf.FindStringSubmatch(host); m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("region of %s = %q; want %q", host, got, want)
		}
	}
}

func with(o Options, c credentials.Credential) Options { o.Credential = c; return o }

func ptr(s string) *string { return &s }
