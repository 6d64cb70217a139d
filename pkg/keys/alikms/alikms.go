// Package alikms signs with an asymmetric Alibaba Cloud KMS key through the
// official SDK (github.com/alibabacloud-go/kms-20160120/v3). The private key
// never leaves KMS: SignDigest sends the SHA-256 digest to AsymmetricSign.
//
// A key is named "alikms://<region>/<key-id-or-alias>[?version=<key-version-id>]",
// e.g. alikms://cn-hangzhou/alias/image-signing. Open calls DescribeKey and refuses
// keys that are not Enabled, not SIGN/VERIFY or not RSA_2048/RSA_3072/EC_P256.
// KMS requires a version id to sign; asymmetric keys have no primary version, so
// without ?version Open takes the newest version ListKeyVersions lists and, when
// the key has several, says so in Warnings.
//
// Gateways: the shared (kms.<region>.aliyuncs.com) and VPC
// (kms-vpc.<region>.aliyuncs.com) gateways serve every operation. A dedicated
// gateway (<kst-id>.cryptoservice.kms.aliyuncs.com, Config.Dedicated) serves only
// the cryptographic ones, GetPublicKey and AsymmetricSign: there Open makes no
// management call, so the reference must name ?version= and the key's spec is
// read from its public key.
//
// Credentials come from Config.Credential or, when nil, from credentials-go's
// default chain: ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET
// (+ALIBABA_CLOUD_SECURITY_TOKEN for STS), RRSA/OIDC (ALIBABA_CLOUD_ROLE_ARN,
// ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE), the aliyun CLI
// profile, ~/.alibabacloud/credentials, then the ECS instance RAM role.
package alikms

import (
	"context"
	"crypto"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/nri-csig/nri-csig/pkg/keys"
)

// Scheme is the key reference scheme: alikms://<region>/<key-id-or-alias>[?version=<key-version-id>].
const Scheme = "alikms"

// Provider is the Info.Provider of KMS keys.
const Provider = "alikms"

// Default timeouts; the SDK has none, so a dead endpoint would hang forever.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultReadTimeout    = 10 * time.Second
)

// Config configures the KMS client. The zero value uses the shared gateway
// kms.<region>.aliyuncs.com over HTTPS, the default credential chain and the
// default timeouts.
type Config struct {
	// Endpoint overrides the gateway: "host[:port]" or "https://host[:port]", e.g. a
	// dedicated gateway "<kst-id>.cryptoservice.kms.aliyuncs.com" (set CAFile too).
	// "http://" is accepted only for loopback addresses (tests, local fakes).
	Endpoint string
	// CAFile is a PEM bundle trusted for the endpoint's TLS certificate instead of
	// the system roots: the KMS instance CA for a dedicated gateway.
	CAFile string
	// ConnectTimeout bounds the TCP/TLS connect; default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ReadTimeout bounds waiting for the response; default DefaultReadTimeout.
	ReadTimeout time.Duration
	// Credential signs requests; nil means credentials-go's default chain.
	Credential credentials.Credential
	// Dedicated says the endpoint is a dedicated gateway (no DescribeKey or
	// ListKeyVersions): Open then needs ?version= in the reference. An endpoint
	// named *.cryptoservice.kms.aliyuncs.com is always treated as one.
	Dedicated bool
}

// DedicatedSuffix ends the host name of every dedicated gateway.
const DedicatedSuffix = ".cryptoservice.kms.aliyuncs.com"

// IsDedicated reports whether cfg talks to a dedicated gateway.
func (cfg Config) IsDedicated() bool {
	host := cfg.Endpoint
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return cfg.Dedicated || strings.HasSuffix(strings.ToLower(strings.TrimSuffix(host, "/")), DedicatedSuffix)
}

// Ref is a parsed alikms:// key reference.
type Ref struct {
	Region       string
	KeyID        string // key id or "alias/<name>"
	KeyVersionID string // empty: the key's primary version
}

// ParseRef parses "alikms://<region>/<key-id-or-alias>[?version=<key-version-id>]".
func ParseRef(ref string) (Ref, error) {
	const usage = "want alikms://<region>/<key-id-or-alias>[?version=<key-version-id>], e.g. alikms://cn-hangzhou/alias/image-signing"
	rest, ok := strings.CutPrefix(ref, Scheme+"://")
	if !ok {
		return Ref{}, fmt.Errorf("key reference %q: %s", ref, usage)
	}
	rest, query, _ := strings.Cut(rest, "?")
	region, keyID, _ := strings.Cut(rest, "/")
	keyID = strings.TrimSuffix(keyID, "/")
	if region == "" || keyID == "" || keyID == "alias" || keyID == "alias/" {
		return Ref{}, fmt.Errorf("key reference %q: missing region or key id: %s", ref, usage)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return Ref{}, fmt.Errorf("key reference %q: %w", ref, err)
	}
	for k := range q {
		if k != "version" {
			return Ref{}, fmt.Errorf("key reference %q: unknown parameter %q: %s", ref, k, usage)
		}
	}
	return Ref{Region: region, KeyID: keyID, KeyVersionID: q.Get("version")}, nil
}

func (r Ref) String() string {
	s := Scheme + "://" + r.Region + "/" + r.KeyID
	if r.KeyVersionID != "" {
		s += "?version=" + url.QueryEscape(r.KeyVersionID)
	}
	return s
}

// Key is an asymmetric KMS key. It is safe for concurrent use: calls to the
// SDK client, which is not goroutine-safe, are serialised.
type Key struct {
	sem      chan struct{} // a mutex that gives up when ctx does
	client   *kms.Client
	endpoint string
	info     keys.Info
	pub      crypto.PublicKey // cached after the first GetPublicKey
	warnings []string
}

// Open describes the key named by ref, fetches its public key and returns it
// ready to sign with alg (empty: RSA_PKCS1_SHA_256 for RSA, ECDSA_SHA_256 for EC).
// It refuses keys that cannot sign images, with errors wrapping
// keys.ErrUnsupportedKey, ErrKeyDisabled or ErrKeyNotFound that say which key to
// create or what to change.
func Open(ctx context.Context, ref string, alg keys.Algorithm, cfg Config) (*Key, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	client, endpoint, err := newClient(r.Region, cfg)
	if err != nil {
		return nil, err
	}
	k := &Key{sem: make(chan struct{}, 1), client: client, endpoint: endpoint}
	k.info = keys.Info{Provider: Provider, Ref: ref, Region: r.Region, KeyID: r.KeyID, KeyVersionID: r.KeyVersionID}
	if cfg.IsDedicated() {
		return k.openDedicated(ctx, alg)
	}

	var md *kms.DescribeKeyResponseBodyKeyMetadata
	err = k.call(ctx, "DescribeKey", func(ctx context.Context) error {
		resp, err := k.client.DescribeKeyWithContext(ctx, &kms.DescribeKeyRequest{KeyId: dara.String(r.KeyID)}, &dara.RuntimeOptions{})
		if err == nil {
			if resp.Body == nil || resp.Body.KeyMetadata == nil {
				return fmt.Errorf("kms DescribeKey answered without KeyMetadata")
			}
			md = resp.Body.KeyMetadata
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	spec, usage, state := dara.StringValue(md.KeySpec), dara.StringValue(md.KeyUsage), dara.StringValue(md.KeyState)
	if id := dara.StringValue(md.KeyId); id != "" {
		k.info.KeyID = id // the real id, never the alias: it is what signatures record
	}
	if usage != "SIGN/VERIFY" || !signable(spec) {
		return nil, fmt.Errorf("%w: KMS key %s is %s with usage %s, but image signing needs an asymmetric RSA_2048, RSA_3072 or EC_P256 SIGN/VERIFY key: "+
			"create one with `aliyun kms CreateKey --KeySpec RSA_2048 --KeyUsage SIGN/VERIFY` (add --DKMSInstanceId for a KMS instance)",
			keys.ErrUnsupportedKey, k.info.KeyID, orUnknown(spec), orUnknown(usage))
	}
	if state != "Enabled" {
		fix := fmt.Sprintf("enable it (`aliyun kms EnableKey --KeyId %s`) or use another key", k.info.KeyID)
		if state == "PendingDeletion" {
			fix = fmt.Sprintf("cancel its deletion (`aliyun kms CancelKeyDeletion --KeyId %s`) or use another key", k.info.KeyID)
		}
		return nil, fmt.Errorf("%w: KMS key %s is %s: %s", keys.ErrKeyDisabled, k.info.KeyID, orUnknown(state), fix)
	}
	k.info.KeySpec = spec
	if k.info.Algorithm, err = keys.ResolveAlgorithm(spec, alg); err != nil {
		return nil, err
	}
	if k.info.KeyVersionID == "" {
		// PrimaryKeyVersion is a symmetric-key field: ask for the versions.
		var n int
		if k.info.KeyVersionID, n, err = k.latestVersion(ctx); err != nil {
			return nil, err
		}
		if n > 1 {
			k.warnings = append(k.warnings, fmt.Sprintf("KMS key %s has %d versions and %s names none: signing with the newest, %s; "+
				"nodes accept these signatures only if a witness holds that version's public key: pin it with %s",
				k.info.KeyID, n, ref, k.info.KeyVersionID, Ref{Region: r.Region, KeyID: r.KeyID, KeyVersionID: k.info.KeyVersionID}))
		}
	}
	// Fetch the public key now: it proves the version exists and every signer
	// needs it anyway (fingerprint, witness).
	pub, err := k.PublicKey(ctx)
	if err != nil {
		return nil, err
	}
	if got, err := keys.KeySpec(pub); err != nil || got != spec {
		return nil, fmt.Errorf("%w: KMS key %s version %s: DescribeKey says %s but GetPublicKey returned a %s key",
			keys.ErrUnsupportedKey, k.info.KeyID, k.info.KeyVersionID, spec, orUnknown(got))
	}
	return k, nil
}

// openDedicated opens a key through a dedicated gateway, which answers no
// management call: the version must be named and the spec comes from the key.
func (k *Key) openDedicated(ctx context.Context, alg keys.Algorithm) (*Key, error) {
	if k.info.KeyVersionID == "" {
		return nil, fmt.Errorf("%w: %s: a dedicated KMS gateway (%s) serves no DescribeKey or ListKeyVersions, so the reference must name the key version: "+
			"add ?version=<key-version-id> (list them with `aliyun kms ListKeyVersions --KeyId %s` through the shared gateway), or use the shared gateway kms.%s.aliyuncs.com",
			keys.ErrKeyNotFound, k.info.Ref, k.endpoint, k.info.KeyID, k.info.Region)
	}
	pub, err := k.PublicKey(ctx)
	if err != nil {
		return nil, err
	}
	spec, err := keys.KeySpec(pub)
	if err != nil {
		return nil, err
	}
	if !signable(spec) {
		return nil, fmt.Errorf("%w: KMS key %s version %s is %s: %s", keys.ErrUnsupportedKey, k.info.KeyID, k.info.KeyVersionID, spec, keys.CreateHint)
	}
	k.info.KeySpec = spec
	if k.info.Algorithm, err = keys.ResolveAlgorithm(spec, alg); err != nil {
		return nil, err
	}
	return k, nil
}

// signable reports whether KMS signs with keys of spec and nodes verify them.
func signable(spec string) bool {
	return spec == keys.SpecRSA2048 || spec == keys.SpecRSA3072 || spec == keys.SpecECP256
}

// Warnings are things the signer should tell its user, e.g. that an unversioned
// reference chose one of several key versions.
func (k *Key) Warnings() []string { return k.warnings }

// latestVersion asks ListKeyVersions for the newest version and how many there
// are: KMS needs a version to sign and asymmetric keys have no primary version.
func (k *Key) latestVersion(ctx context.Context) (string, int, error) {
	var (
		latest, latestDate string
		count              int
	)
	err := k.call(ctx, "ListKeyVersions", func(ctx context.Context) error {
		for page := int32(1); ; page++ {
			resp, err := k.client.ListKeyVersionsWithContext(ctx, &kms.ListKeyVersionsRequest{
				KeyId: dara.String(k.info.KeyID), PageNumber: dara.Int32(page), PageSize: dara.Int32(100),
			}, &dara.RuntimeOptions{})
			if err != nil {
				return err
			}
			var n int
			if resp.Body != nil && resp.Body.KeyVersions != nil {
				for _, v := range resp.Body.KeyVersions.KeyVersion {
					n++
					count++
					// RFC 3339 UTC dates sort as strings.
					if d := dara.StringValue(v.CreationDate); latest == "" || d > latestDate {
						latest, latestDate = dara.StringValue(v.KeyVersionId), d
					}
				}
			}
			if n < 100 || resp.Body == nil || int(page)*100 >= int(dara.Int32Value(resp.Body.TotalCount)) {
				return nil
			}
		}
	})
	if err != nil {
		return "", 0, err
	}
	if latest == "" {
		return "", 0, fmt.Errorf("%w: KMS key %s has no key version: name one with ?version=<key-version-id>", keys.ErrKeyNotFound, k.info.KeyID)
	}
	return latest, count, nil
}

// SignDigest signs a 32-byte SHA-256 digest with KMS AsymmetricSign.
func (k *Key) SignDigest(ctx context.Context, digest []byte) ([]byte, error) {
	if len(digest) != crypto.SHA256.Size() {
		return nil, fmt.Errorf("alikms: digest is %d bytes, want a 32-byte SHA-256 digest", len(digest))
	}
	var value string
	err := k.call(ctx, "AsymmetricSign", func(ctx context.Context) error {
		resp, err := k.client.AsymmetricSignWithContext(ctx, &kms.AsymmetricSignRequest{
			KeyId:        dara.String(k.info.KeyID),
			KeyVersionId: dara.String(k.info.KeyVersionID),
			Algorithm:    dara.String(string(k.info.Algorithm)),
			Digest:       dara.String(base64.StdEncoding.EncodeToString(digest)),
		}, &dara.RuntimeOptions{})
		if err == nil && resp.Body != nil {
			value = dara.StringValue(resp.Body.Value)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(sig) == 0 {
		return nil, fmt.Errorf("alikms: AsymmetricSign returned no valid base64 signature (%d chars)", len(value))
	}
	return sig, nil
}

// PublicKey fetches the public key of the signing version once (GetPublicKey)
// and returns the cached copy afterwards.
func (k *Key) PublicKey(ctx context.Context) (crypto.PublicKey, error) {
	var pub crypto.PublicKey
	err := k.call(ctx, "GetPublicKey", func(ctx context.Context) error {
		if k.pub != nil {
			pub = k.pub
			return nil
		}
		resp, err := k.client.GetPublicKeyWithContext(ctx, &kms.GetPublicKeyRequest{
			KeyId: dara.String(k.info.KeyID), KeyVersionId: dara.String(k.info.KeyVersionID),
		}, &dara.RuntimeOptions{})
		if err != nil {
			return err
		}
		var pemText string
		if resp.Body != nil {
			pemText = dara.StringValue(resp.Body.PublicKey)
			if id := dara.StringValue(resp.Body.KeyId); id != "" {
				k.info.KeyID = id // an alias resolved, where DescribeKey was not called
			}
		}
		if pub, err = parsePublicKey(pemText); err != nil {
			return fmt.Errorf("alikms: public key of %s version %s: %w", k.info.KeyID, k.info.KeyVersionID, err)
		}
		k.pub = pub
		return nil
	})
	return pub, err
}

// Info describes the key; KeyID is the real key id even when opened by alias.
func (k *Key) Info() keys.Info { return k.info }

// call runs fn holding the client lock and turns SDK errors into sentences.
func (k *Key) call(ctx context.Context, op string, fn func(context.Context) error) error {
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: alikms %s on %s: gave up waiting for the client: %w", keys.ErrUnavailable, op, k.endpoint, ctx.Err())
	}
	defer func() { <-k.sem }()
	if err := ctx.Err(); err != nil {
		return explain(op, k.endpoint, k.info.KeyID, err)
	}
	if err := fn(ctx); err != nil {
		return explain(op, k.endpoint, k.info.KeyID, err)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
