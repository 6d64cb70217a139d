// Package acrcred is a kubelet credential provider for Alibaba Cloud
// Container Registry Enterprise Edition (ACR EE): it answers the
// credentialprovider.kubelet.k8s.io/v1 exec protocol with a temporary
// registry password from the ACR API's GetAuthorizationToken
// (github.com/alibabacloud-go/cr-20181201/v2), signed with the credentials
// of credentials-go's default chain: on an ACK node, the node's RAM role
// from the ECS metadata service, so no static secret is kept on the node.
//
// "nri-csig acr-credential-provider" runs it; kubelet and nri-csig's own
// credential provider support (package credprovider) both run that command
// as a plugin. Only the CLI imports this package: the node daemon links no
// Alibaba Cloud SDK, it only executes the plugin.
//
// The answer's cacheKeyType is Registry (the token is valid for the whole
// instance) and its cacheDuration the token's remaining life less
// ExpiryMargin, so that no cached token is used after it expires.
package acrcred

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	cr "github.com/alibabacloud-go/cr-20181201/v2/client"
	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/credentials-go/credentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	"github.com/nri-csig/nri-csig/internal/registry/check"
)

const (
	// DefaultTimeout bounds the ACR API call (connect plus answer) and
	// fetching the RAM role's credentials.
	DefaultTimeout = 10 * time.Second
	// ExpiryMargin is taken off the token's life for the cache duration.
	ExpiryMargin = 5 * time.Minute
	// maxRequest bounds the CredentialProviderRequest read from stdin.
	maxRequest = 1 << 20
	apiVersion = "credentialprovider.kubelet.k8s.io/v1"
)

// Options configure the provider. InstanceID is required.
type Options struct {
	// InstanceID is the ACR EE instance (cri-...).
	InstanceID string
	// Region is the instance's region (cn-hangzhou ...). Empty: read from
	// the image's registry host, <instance>-registry[-vpc].<region>.cr.aliyuncs.com.
	Region string
	// Endpoint is the ACR API endpoint: host[:port] or https://host[:port]
	// (plain http:// only to loopback, for tests). Empty: cr.<region>.aliyuncs.com.
	Endpoint string
	// Credential signs the API call. Nil: credentials-go's default chain
	// (environment, profile, ECS RAM role, ALIBABA_CLOUD_CREDENTIALS_URI).
	Credential credentials.Credential
	// Timeout overrides DefaultTimeout when positive.
	Timeout time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Token is an ACR registry login. Printed with any verb, it shows the
// username and expiry only.
type Token struct {
	Username, Password string
	Expires            time.Time
}

func (t Token) String() string {
	return "username " + t.Username + ", password redacted, expires " + t.Expires.UTC().Format(time.RFC3339)
}
func (t Token) GoString() string { return t.String() }

// Serve reads a CredentialProviderRequest from in, gets a token for the
// image's registry and writes the CredentialProviderResponse to out.
// Errors never carry the token.
func Serve(ctx context.Context, in io.Reader, out io.Writer, o Options) error {
	data, err := io.ReadAll(io.LimitReader(in, maxRequest+1))
	if err != nil {
		return fmt.Errorf("reading the CredentialProviderRequest on stdin: %w", err)
	}
	if len(data) > maxRequest {
		return fmt.Errorf("the CredentialProviderRequest on stdin is larger than %d bytes", maxRequest)
	}
	var req credentialproviderv1.CredentialProviderRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return fmt.Errorf("stdin is not a CredentialProviderRequest (this command is run by kubelet or nri-csig as a credential provider plugin): %w", err)
	}
	if req.APIVersion != apiVersion || req.Kind != "CredentialProviderRequest" {
		return fmt.Errorf("request apiVersion %q kind %q: want %s CredentialProviderRequest; set apiVersion: %s for this provider in the CredentialProviderConfig", req.APIVersion, req.Kind, apiVersion, apiVersion)
	}
	if req.Image == "" {
		return errors.New("the request names no image")
	}
	host, _, _ := strings.Cut(req.Image, "/")
	tok, err := GetToken(ctx, host, o)
	if err != nil {
		return err
	}
	now := clock(o)()
	ttl := max(tok.Expires.Sub(now)-ExpiryMargin, 0).Truncate(time.Second)
	resp := credentialproviderv1.CredentialProviderResponse{
		TypeMeta:      metav1.TypeMeta{APIVersion: apiVersion, Kind: "CredentialProviderResponse"},
		CacheKeyType:  credentialproviderv1.RegistryPluginCacheKeyType,
		CacheDuration: &metav1.Duration{Duration: ttl},
		Auth:          map[string]credentialproviderv1.AuthConfig{host: {Username: tok.Username, Password: tok.Password}},
	}
	return json.NewEncoder(out).Encode(resp)
}

// regionOf reads the region of an ACR EE registry host.
var regionOf = regexp.MustCompile(`^[a-z0-9-]+\.([a-z0-9-]+)\.cr\.aliyuncs\.com(:\d+)?$`)

// GetToken calls GetAuthorizationToken for the instance and returns the
// login it grants. host is the registry host, for the region when
// Options.Region is empty.
func GetToken(ctx context.Context, host string, o Options) (*Token, error) {
	if o.InstanceID == "" {
		return nil, errors.New("no ACR instance: pass --instance-id cri-... (the ACR Enterprise Edition instance ID) in the provider's args, or set ACR_INSTANCE_ID in its env")
	}
	region := o.Region
	if region == "" {
		m := regionOf.FindStringSubmatch(host)
		if m == nil {
			return nil, fmt.Errorf("cannot tell the region of registry %s (not <instance>-registry.<region>.cr.aliyuncs.com): pass --region", host)
		}
		region = m[1]
	}
	protocol, endpoint, err := endpointOf(o.Endpoint, region)
	if err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cred := o.Credential
	if cred == nil {
		// The SDK does not fall back to the default chain by itself.
		if cred, err = credentials.NewCredential(nil); err != nil {
			return nil, fmt.Errorf("alibaba cloud credentials: %w", err)
		}
	}
	hc := &httpClient{c: &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
	}}}
	client, err := cr.NewClient(&openapi.Config{
		RegionId: tea.String(region), Endpoint: tea.String(endpoint), Protocol: tea.String(protocol),
		Credential: cred, HttpClient: hc,
		ConnectTimeout: tea.Int(int(timeout.Milliseconds())), ReadTimeout: tea.Int(int(timeout.Milliseconds())),
	})
	if err != nil {
		return nil, fmt.Errorf("acr client: %w", err)
	}
	type result struct {
		resp *cr.GetAuthorizationTokenResponse
		err  error
	}
	// The SDK takes no context; its HTTP client is bounded by timeout and
	// the caller's context is honoured here.
	done := make(chan result, 1)
	go func() {
		resp, err := client.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(o.InstanceID)})
		done <- result{resp, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("acr GetAuthorizationToken for %s on %s: %w", o.InstanceID, endpoint, ctx.Err())
	}
	if res.err != nil {
		return nil, explain(o.InstanceID, endpoint, res.err)
	}
	b := res.resp.Body
	if b == nil || !tea.BoolValue(b.IsSuccess) && b.IsSuccess != nil || tea.StringValue(b.AuthorizationToken) == "" || tea.StringValue(b.TempUsername) == "" {
		code := ""
		if b != nil {
			code = tea.StringValue(b.Code)
		}
		return nil, fmt.Errorf("acr GetAuthorizationToken for %s on %s: no token in the answer (code %q)", o.InstanceID, endpoint, code)
	}
	return &Token{Username: tea.StringValue(b.TempUsername), Password: tea.StringValue(b.AuthorizationToken),
		Expires: time.UnixMilli(tea.Int64Value(b.ExpireTime))}, nil
}

func endpointOf(endpoint, region string) (protocol, host string, err error) {
	protocol, host = "https", strings.TrimSuffix(endpoint, "/")
	if rest, ok := strings.CutPrefix(host, "https://"); ok {
		host = rest
	} else if rest, ok := strings.CutPrefix(host, "http://"); ok {
		if !check.LoopbackHostPort(rest) {
			return "", "", fmt.Errorf("acr endpoint %q: plain http is allowed only for loopback test endpoints: use https://", endpoint)
		}
		protocol, host = "http", rest
	} else if strings.Contains(host, "://") {
		return "", "", fmt.Errorf("acr endpoint %q: want host[:port] or https://host[:port]", endpoint)
	}
	if host == "" {
		host = "cr." + region + ".aliyuncs.com"
	}
	return protocol, host, nil
}

// explain says what an SDK error means; it never includes credentials
// (the SDK's errors carry the code, message and request id).
func explain(instance, endpoint string, err error) error {
	prefix := fmt.Sprintf("acr GetAuthorizationToken for %s on %s", instance, endpoint)
	var se *tea.SDKError
	if errors.As(err, &se) && tea.StringValue(se.Code) != "" {
		hint := ""
		switch code := tea.StringValue(se.Code); {
		case strings.Contains(code, "AccessKey"), strings.Contains(code, "SecurityToken"), strings.Contains(code, "Signature"):
			hint = ": the credentials were refused: check the node's RAM role (or the AccessKey in the environment)"
		case strings.Contains(code, "Forbidden"), strings.Contains(code, "NoPermission"):
			hint = ": the RAM role may not call cr:GetAuthorizationToken on this instance: grant it"
		}
		return fmt.Errorf("%s: %s: %s (HTTP %d)%s", prefix, tea.StringValue(se.Code), tea.StringValue(se.Message), tea.IntValue(se.StatusCode), hint)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

func clock(o Options) func() time.Time {
	if o.Now != nil {
		return o.Now
	}
	return time.Now
}

// httpClient gives the SDK our own bounded transport (dara.HttpClient).
type httpClient struct{ c *http.Client }

var _ dara.HttpClient = (*httpClient)(nil)

func (h *httpClient) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	return h.c.Do(req)
}
