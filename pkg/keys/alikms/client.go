package alikms

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/nri-csig/nri-csig/internal/registry/check"
	"github.com/nri-csig/nri-csig/pkg/keys"
)

// newClient builds an SDK client for region and cfg and returns it with the
// endpoint it talks to (for messages).
func newClient(region string, cfg Config) (*kms.Client, string, error) {
	protocol, host := "https", strings.TrimSuffix(cfg.Endpoint, "/")
	if rest, ok := strings.CutPrefix(host, "https://"); ok {
		host = rest
	} else if rest, ok := strings.CutPrefix(host, "http://"); ok {
		if !check.LoopbackHostPort(rest) {
			return nil, "", fmt.Errorf("kms endpoint %q: plain http is allowed only for loopback test endpoints: use https://", cfg.Endpoint)
		}
		protocol, host = "http", rest
	} else if strings.Contains(host, "://") {
		return nil, "", fmt.Errorf("kms endpoint %q: want host[:port] or https://host[:port]", cfg.Endpoint)
	}
	if host == "" {
		host = "kms." + region + ".aliyuncs.com" // what the SDK derives for RegionId; kept for messages
	}

	hc, err := newHTTPClient(cfg)
	if err != nil {
		return nil, "", err
	}
	cred := cfg.Credential
	if cred == nil {
		// The SDK does not fall back to the default chain by itself.
		if cred, err = credentials.NewCredential(nil); err != nil {
			return nil, "", fmt.Errorf("%w: kms credentials: %w", keys.ErrAuth, err)
		}
	}
	oc := &openapi.Config{
		RegionId:   dara.String(region),
		Endpoint:   dara.String(host),
		Protocol:   dara.String(protocol),
		Credential: cred,
		// The SDK still reads these (ms, tea >= 1.5) for the transport it builds and
		// discards when HttpClient is set; keep them equal to ours for clarity.
		ConnectTimeout: dara.Int(int(connectTimeout(cfg).Milliseconds())),
		ReadTimeout:    dara.Int(int(readTimeout(cfg).Milliseconds())),
		HttpClient:     hc,
	}
	c, err := kms.NewClient(oc)
	if err != nil {
		return nil, "", fmt.Errorf("kms client: %w", err)
	}
	return c, host, nil
}

func connectTimeout(cfg Config) time.Duration {
	if cfg.ConnectTimeout > 0 {
		return cfg.ConnectTimeout
	}
	return DefaultConnectTimeout
}

func readTimeout(cfg Config) time.Duration {
	if cfg.ReadTimeout > 0 {
		return cfg.ReadTimeout
	}
	return DefaultReadTimeout
}

// httpClient implements dara.HttpClient with a transport of our own, so that:
// proxies follow net/http rules (NO_PROXY suffixes and CIDRs, loopback never
// proxied; tea's own proxy code proxies 127.0.0.1), timeouts are always set,
// the instance CA is honoured, and no state is shared with other SDK clients
// (tea's per-host default client is mutated on every call).
type httpClient struct{ c *http.Client }

var _ dara.HttpClient = (*httpClient)(nil)

func (h *httpClient) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	return h.c.Do(req)
}

func newHTTPClient(cfg Config) (*httpClient, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		data, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kms CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("kms CA file %s: no PEM certificate found: pass the KMS instance CA (PrivateKmsCA_kst-*.pem)", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	ct, rt := connectTimeout(cfg), readTimeout(cfg)
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: ct, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   ct,
		ResponseHeaderTimeout: rt,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &httpClient{c: &http.Client{Transport: tr, Timeout: ct + rt}}, nil
}

// parsePublicKey parses GetPublicKey's PEM SubjectPublicKeyInfo.
func parsePublicKey(text string) (crypto.PublicKey, error) {
	// The API docs show escaped newlines; accept both forms.
	text = strings.ReplaceAll(text, `\n`, "\n")
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("GetPublicKey did not return a PEM \"PUBLIC KEY\"")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	if _, err := keys.KeySpec(pub); err != nil {
		return nil, err
	}
	return pub, nil
}
