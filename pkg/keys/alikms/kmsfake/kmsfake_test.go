package kmsfake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
)

// recorder sends requests with a plain client and keeps the last one, so a test
// can replay or tamper with a request the real SDK signed.
type recorder struct{ last *http.Request }

func (r *recorder) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	r.last = req.Clone(req.Context())
	return http.DefaultClient.Do(req)
}

func TestSignatureChecks(t *testing.T) {
	fake, err := kmsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	rec := &recorder{}
	c, err := kms.NewClient(&openapi.Config{
		AccessKeyId: dara.String(kmsfake.AccessKeyID), AccessKeySecret: dara.String(kmsfake.AccessKeySecret),
		RegionId: dara.String(kmsfake.Region), Endpoint: dara.String(fake.Endpoint), Protocol: dara.String("http"),
		HttpClient: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeKeyWithContext(t.Context(), &kms.DescribeKeyRequest{KeyId: dara.String(kmsfake.KeyRSA)}, &dara.RuntimeOptions{}); err != nil {
		t.Fatalf("DescribeKey through the real SDK = %v", err)
	}

	send := func(req *http.Request) (int, string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e struct{ Code, RequestId string }
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("error body %q is not JSON: %v", body, err)
		}
		if resp.StatusCode >= 400 && e.RequestId == "" {
			t.Errorf("error body %q has no RequestId", body)
		}
		return resp.StatusCode, e.Code
	}
	clone := func() *http.Request {
		r := rec.last.Clone(t.Context())
		r.RequestURI = ""
		return r
	}

	if status, code := send(clone()); status != 400 || code != "SignatureNonceUsed" {
		t.Errorf("replayed request = %d %s; want 400 SignatureNonceUsed", status, code)
	}
	tampered := clone()
	q := tampered.URL.Query()
	q.Set("KeyId", kmsfake.KeyEC)
	tampered.URL.RawQuery = q.Encode()
	if status, code := send(tampered); status != 400 || code != "SignatureDoesNotMatch" {
		t.Errorf("request with a changed parameter = %d %s; want 400 SignatureDoesNotMatch", status, code)
	}
	unsigned := clone()
	unsigned.Header.Del("Authorization")
	if status, code := send(unsigned); status != 400 || code != "IncompleteSignature" {
		t.Errorf("unsigned request = %d %s; want 400 IncompleteSignature", status, code)
	}
	stale := clone()
	stale.Header.Set("x-acs-date", "2020-01-01T00:00:00Z")
	if status, code := send(stale); status != 400 || code != "IllegalTimestamp" {
		t.Errorf("request dated 2020 = %d %s; want 400 IllegalTimestamp", status, code)
	}
}

// TestServiceFidelity: DescribeKey reports PrimaryKeyVersion for symmetric keys
// only, and a dedicated gateway refuses management calls but signs.
func TestServiceFidelity(t *testing.T) {
	client := func(fake *kmsfake.Server, protocol string) *kms.Client {
		hc := &http.Client{Transport: fake.Client().Transport}
		c, err := kms.NewClient(&openapi.Config{
			AccessKeyId: dara.String(kmsfake.AccessKeyID), AccessKeySecret: dara.String(kmsfake.AccessKeySecret),
			RegionId: dara.String(kmsfake.Region), Endpoint: dara.String(fake.Endpoint), Protocol: dara.String(protocol),
			HttpClient: clientFunc(func(r *http.Request) (*http.Response, error) { return hc.Do(r) }),
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	fake, err := kmsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	c := client(fake, "http")
	for key, wantPrimary := range map[string]bool{kmsfake.KeyRSA: false, kmsfake.KeyEC: false, kmsfake.KeyAES: true} {
		resp, err := c.DescribeKeyWithContext(t.Context(), &kms.DescribeKeyRequest{KeyId: dara.String(key)}, &dara.RuntimeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := dara.StringValue(resp.Body.KeyMetadata.PrimaryKeyVersion) != ""; got != wantPrimary {
			t.Errorf("DescribeKey(%s) PrimaryKeyVersion present = %v; want %v", key, got, wantPrimary)
		}
	}

	ded, err := kmsfake.NewDedicated()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ded.Close)
	dc := client(ded, "https")
	_, err = dc.DescribeKeyWithContext(t.Context(), &kms.DescribeKeyRequest{KeyId: dara.String(kmsfake.KeyRSA)}, &dara.RuntimeOptions{})
	if err == nil || !strings.Contains(err.Error(), kmsfake.ManagementOnDedicatedGateway) {
		t.Fatalf("DescribeKey on a dedicated gateway = %v; want %s", err, kmsfake.ManagementOnDedicatedGateway)
	}
	if _, err := dc.GetPublicKeyWithContext(t.Context(), &kms.GetPublicKeyRequest{KeyId: dara.String(kmsfake.KeyRSA), KeyVersionId: dara.String(kmsfake.VersionRSA)}, &dara.RuntimeOptions{}); err != nil {
		t.Fatalf("GetPublicKey on a dedicated gateway = %v", err)
	}
}

type clientFunc func(*http.Request) (*http.Response, error)

func (f clientFunc) Call(r *http.Request, _ *http.Transport) (*http.Response, error) { return f(r) }
