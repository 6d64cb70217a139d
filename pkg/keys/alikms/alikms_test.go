package alikms_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials"

	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
)

// shared is one fake for the tests that do not change its state (key
// generation dominates start-up).
var shared *kmsfake.Server

func TestMain(m *testing.M) {
	var err error
	if shared, err = kmsfake.New(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

func staticAK(t testing.TB, id, secret string) credentials.Credential {
	t.Helper()
	c, err := credentials.NewCredential(&credentials.Config{Type: ptr("access_key"), AccessKeyId: ptr(id), AccessKeySecret: ptr(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ptr(s string) *string { return &s }

func config(t testing.TB, fake *kmsfake.Server) alikms.Config {
	return alikms.Config{
		Endpoint:   "http://" + fake.Endpoint,
		Credential: staticAK(t, kmsfake.AccessKeyID, kmsfake.AccessKeySecret),
	}
}

func ref(key string) string { return "alikms://" + kmsfake.Region + "/" + key }

func TestSignVerify(t *testing.T) {
	cases := map[string]struct {
		ref         string
		alg         keys.Algorithm
		wantAlg     keys.Algorithm
		wantKey     string
		wantVersion string
		wantSpec    string
	}{
		"alias, default PKCS1":        {ref(kmsfake.AliasRSA), "", keys.RSAPKCS1SHA256, kmsfake.KeyRSA, kmsfake.VersionRSA, "RSA_2048"},
		"key id, PSS":                 {ref(kmsfake.KeyRSA), keys.RSAPSSSHA256, keys.RSAPSSSHA256, kmsfake.KeyRSA, kmsfake.VersionRSA, "RSA_2048"},
		"explicit old version, PKCS1": {ref(kmsfake.KeyRSA) + "?version=" + kmsfake.VersionRSAOld, keys.RSAPKCS1SHA256, keys.RSAPKCS1SHA256, kmsfake.KeyRSA, kmsfake.VersionRSAOld, "RSA_2048"},
		"EC P-256, default ECDSA":     {ref(kmsfake.KeyEC), "", keys.ECDSASHA256, kmsfake.KeyEC, kmsfake.VersionEC, "EC_P256"},
		"RSA_3072, default PKCS1":     {ref(kmsfake.KeyRSA3072), "", keys.RSAPKCS1SHA256, kmsfake.KeyRSA3072, "rsa3072-v1", "RSA_3072"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := keyref.Open(t.Context(), tc.ref, keyref.Options{Algorithm: tc.alg, KMS: config(t, shared)})
			if err != nil {
				t.Fatalf("Open(%q) = %v", tc.ref, err)
			}
			info := s.Info()
			if info.Provider != "alikms" || info.KeyID != tc.wantKey || info.KeyVersionID != tc.wantVersion ||
				info.Algorithm != tc.wantAlg || info.KeySpec != tc.wantSpec || info.Region != kmsfake.Region || info.Ref != tc.ref {
				t.Fatalf("Info() = %+v; want key %s version %s alg %s spec %s", info, tc.wantKey, tc.wantVersion, tc.wantAlg, tc.wantSpec)
			}
			digest := sha256.Sum256([]byte("simple signing payload for " + name))
			sig, err := s.SignDigest(t.Context(), digest[:])
			if err != nil {
				t.Fatalf("SignDigest = %v", err)
			}
			pub, err := s.PublicKey(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want := shared.PublicKey(tc.wantKey, tc.wantVersion)
			if eq, ok := want.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(pub) {
				t.Fatalf("PublicKey is not the one of %s/%s", tc.wantKey, tc.wantVersion)
			}
			// Standard library first, then the shared primitive.
			switch info.Algorithm {
			case keys.RSAPKCS1SHA256:
				err = rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig)
			case keys.RSAPSSSHA256:
				err = rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
			case keys.ECDSASHA256:
				if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
					err = errors.New("ecdsa.VerifyASN1 failed")
				}
			}
			if err != nil {
				t.Fatalf("crypto verify: %v", err)
			}
			if err := keys.VerifyDigest(pub, info.Algorithm, digest[:], sig); err != nil {
				t.Fatalf("keys.VerifyDigest = %v", err)
			}
			other := sha256.Sum256([]byte("another image"))
			if err := keys.VerifyDigest(pub, info.Algorithm, other[:], sig); !errors.Is(err, keys.ErrInvalidSignature) {
				t.Fatalf("VerifyDigest(other digest) = %v; want ErrInvalidSignature", err)
			}
		})
	}
}

func TestRefusedKeys(t *testing.T) {
	cases := map[string]struct {
		ref   string
		alg   keys.Algorithm
		class error
		want  []string
	}{
		"symmetric key": {ref(kmsfake.KeyAES), "", keys.ErrUnsupportedKey,
			[]string{"Aliyun_AES_256", "ENCRYPT/DECRYPT", "aliyun kms CreateKey --KeySpec RSA_2048 --KeyUsage SIGN/VERIFY"}},
		"disabled key": {ref(kmsfake.KeyDisabled), "", keys.ErrKeyDisabled, []string{"is Disabled", "aliyun kms EnableKey --KeyId " + kmsfake.KeyDisabled}},
		"key not found": {ref("key-does-not-exist"), "", keys.ErrKeyNotFound,
			[]string{"does not exist", "Forbidden.KeyNotFound", "HTTP 404", "RequestId "}},
		"alias not found":   {ref("alias/nope"), "", keys.ErrKeyNotFound, []string{"Forbidden.AliasNotFound"}},
		"version not found": {ref(kmsfake.KeyRSA) + "?version=nope", "", keys.ErrKeyNotFound, []string{"GetPublicKey", "KeyVersionNotFound"}},
		"PSS on EC key":     {ref(kmsfake.KeyEC), keys.RSAPSSSHA256, keys.ErrUnsupportedKey, []string{"needs an RSA key"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := keyref.Open(t.Context(), tc.ref, keyref.Options{Algorithm: tc.alg, KMS: config(t, shared)})
			if !errors.Is(err, tc.class) {
				t.Fatalf("Open(%q) = %v; want errors.Is %v", tc.ref, err, tc.class)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open(%q) = %q; want it to contain %q", tc.ref, err, w)
				}
			}
		})
	}
}

func TestBadCredentials(t *testing.T) {
	cases := map[string]struct {
		id, secret string
		want       []string
	}{
		"wrong secret":        {kmsfake.AccessKeyID, "wrong-secret", []string{"ALIBABA_CLOUD_ACCESS_KEY_SECRET", "SignatureDoesNotMatch", "HTTP 400", "RequestId "}},
		"unknown AccessKeyId": {"LTAI5tUnknownKey", kmsfake.AccessKeySecret, []string{"AccessKey ID is unknown", "InvalidAccessKeyId.NotFound", "HTTP 404"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := config(t, shared)
			cfg.Credential = staticAK(t, tc.id, tc.secret)
			_, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg})
			if !errors.Is(err, keys.ErrAuth) {
				t.Fatalf("Open = %v; want ErrAuth", err)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open = %q; want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q leaks the secret", err)
			}
		})
	}
}

func TestSTSToken(t *testing.T) {
	sts := func(token string) credentials.Credential {
		c, err := credentials.NewCredential(&credentials.Config{Type: ptr("sts"), AccessKeyId: ptr(kmsfake.AccessKeyID),
			AccessKeySecret: ptr(kmsfake.AccessKeySecret), SecurityToken: ptr(token)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cfg := config(t, shared)
	cfg.Credential = sts(kmsfake.SecurityToken)
	if _, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg}); err != nil {
		t.Fatalf("Open with STS token = %v", err)
	}
	cfg.Credential = sts("expired-token")
	_, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg})
	if !errors.Is(err, keys.ErrAuth) || !strings.Contains(err.Error(), "STS token") {
		t.Fatalf("Open with a bad STS token = %v; want ErrAuth about the STS token", err)
	}
}

// TestDefaultCredentialChain checks that a nil Credential reads the AccessKey
// from the environment through credentials-go's default chain.
func TestDefaultCredentialChain(t *testing.T) {
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", kmsfake.AccessKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", kmsfake.AccessKeySecret)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	cfg := config(t, shared)
	cfg.Credential = nil
	s, err := keyref.Open(t.Context(), ref(kmsfake.AliasRSA), keyref.Options{KMS: cfg})
	if err != nil {
		t.Fatalf("Open with env credentials = %v", err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := s.SignDigest(t.Context(), digest[:]); err != nil {
		t.Fatal(err)
	}
}

func TestTimeout(t *testing.T) {
	fake, err := kmsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	s, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: config(t, fake)})
	if err != nil {
		t.Fatal(err)
	}
	fake.SetDelay(3 * time.Second)
	digest := sha256.Sum256([]byte("x"))

	t.Run("ctx deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.SignDigest(ctx, digest[:])
		if !errors.Is(err, keys.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("SignDigest = %v; want ErrUnavailable and DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("SignDigest returned after %v; the 200ms deadline was not honoured", d)
		}
		t.Log(err)
		if !strings.Contains(err.Error(), "timed out") {
			t.Errorf("SignDigest = %q; want it to say it timed out", err)
		}
	})
	t.Run("read timeout", func(t *testing.T) {
		cfg := config(t, fake)
		cfg.ReadTimeout = 200 * time.Millisecond
		start := time.Now()
		_, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg})
		if !errors.Is(err, keys.ErrUnavailable) {
			t.Fatalf("Open = %v; want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Open returned after %v; ReadTimeout 200ms was not honoured", d)
		}
	})
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	cfg := config(t, shared)
	cfg.Endpoint = "http://" + addr
	_, err = keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg})
	if !errors.Is(err, keys.ErrUnavailable) || !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Open(unreachable) = %v; want ErrUnavailable saying it cannot reach %s", err, addr)
	}
	t.Log(err)
}

// TestKeyDisabledAfterOpen covers KMS refusing a sign: the error code is mapped.
func TestKeyDisabledAfterOpen(t *testing.T) {
	fake, err := kmsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	s, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: config(t, fake)})
	if err != nil {
		t.Fatal(err)
	}
	fake.SetKeyState(kmsfake.KeyRSA, "Disabled")
	digest := sha256.Sum256([]byte("x"))
	_, err = s.SignDigest(t.Context(), digest[:])
	var ke *alikms.Error
	if !errors.Is(err, keys.ErrKeyDisabled) || !errors.As(err, &ke) || ke.Code != "Rejected.Disabled" || ke.Status != 409 || ke.RequestID == "" {
		t.Fatalf("SignDigest(disabled) = %v (%+v); want ErrKeyDisabled with Rejected.Disabled/409 and a RequestId", err, ke)
	}
	t.Log(err)
}

func TestTLSWithCA(t *testing.T) {
	fake, err := kmsfake.NewTLS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	ca := filepath.Join(t.TempDir(), "PrivateKmsCA_kst-test.pem")
	if err := os.WriteFile(ca, fake.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config(t, fake)
	cfg.Endpoint = "https://" + fake.Endpoint
	if _, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg}); !errors.Is(err, keys.ErrUnavailable) || !strings.Contains(err.Error(), "--kms-ca") {
		t.Fatalf("Open without CA = %v; want an untrusted-certificate error naming --kms-ca", err)
	}
	cfg.CAFile = ca
	s, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg})
	if err != nil {
		t.Fatalf("Open with CA = %v", err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := s.SignDigest(t.Context(), digest[:]); err != nil {
		t.Fatal(err)
	}
}

// TestProxyEnvSkipsLoopback: tea's own transport sends 127.0.0.1 through
// HTTP_PROXY; ours must not.
func TestProxyEnvSkipsLoopback(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("http_proxy", "http://127.0.0.1:1")
	if _, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: config(t, shared)}); err != nil {
		t.Fatalf("Open with HTTP_PROXY set = %v", err)
	}
}

func TestPlainHTTPOnlyForLoopback(t *testing.T) {
	cfg := config(t, shared)
	cfg.Endpoint = "http://kms.cn-hangzhou.aliyuncs.com"
	if _, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg}); err == nil || !strings.Contains(err.Error(), "only for loopback") {
		t.Fatalf("Open(http non-loopback) = %v; want refusal", err)
	}
}

// TestConcurrentSign shares one Key between goroutines; run with -race.
func TestConcurrentSign(t *testing.T) {
	s, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: config(t, shared)})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.PublicKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				d := sha256.Sum256(fmt.Appendf(nil, "%d/%d", g, i))
				sig, err := s.SignDigest(t.Context(), d[:])
				if err == nil {
					err = keys.VerifyDigest(pub, s.Info().Algorithm, d[:], sig)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestParseRef(t *testing.T) {
	good := map[string]alikms.Ref{
		"alikms://cn-hangzhou/key-123":                  {Region: "cn-hangzhou", KeyID: "key-123"},
		"alikms://cn-shanghai/alias/image-signing":      {Region: "cn-shanghai", KeyID: "alias/image-signing"},
		"alikms://cn-hangzhou/key-123?version=v-1":      {Region: "cn-hangzhou", KeyID: "key-123", KeyVersionID: "v-1"},
		"alikms://ap-southeast-1/alias/a/b?version=v-2": {Region: "ap-southeast-1", KeyID: "alias/a/b", KeyVersionID: "v-2"},
	}
	for in, want := range good {
		got, err := alikms.ParseRef(in)
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"alikms://", "alikms://cn-hangzhou", "alikms://cn-hangzhou/", "alikms:///key", "alikms://r/alias/", "alikms://r/k?v=1", "awskms://r/k"} {
		if got, err := alikms.ParseRef(in); err == nil {
			t.Errorf("ParseRef(%q) = %+v; want an error", in, got)
		}
	}
}

func BenchmarkKMSSign(b *testing.B) {
	// ECDSA signing costs the fake ~30µs, so that case shows the SDK + HTTP overhead.
	for _, tc := range []struct {
		key string
		alg keys.Algorithm
	}{{kmsfake.KeyRSA, keys.RSAPKCS1SHA256}, {kmsfake.KeyRSA, keys.RSAPSSSHA256}, {kmsfake.KeyEC, keys.ECDSASHA256}} {
		b.Run(string(tc.alg), func(b *testing.B) {
			s, err := keyref.Open(b.Context(), ref(tc.key), keyref.Options{Algorithm: tc.alg, KMS: config(b, shared)})
			if err != nil {
				b.Fatal(err)
			}
			digest := sha256.Sum256([]byte("payload"))
			for b.Loop() {
				if _, err := s.SignDigest(b.Context(), digest[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestNoCredentials: an empty default chain is a clear ErrAuth, not a panic.
func TestNoCredentials(t *testing.T) {
	for _, env := range []string{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
		"ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE", "ALIBABA_CLOUD_CREDENTIALS_FILE",
		"ALIBABA_CLOUD_CONFIG_FILE", "ALIBABA_CLOUD_CREDENTIALS_URI", "ALIBABA_CLOUD_ECS_METADATA"} {
		t.Setenv(env, "")
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	cfg := config(t, shared)
	cfg.Credential = nil
	_, err := keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg})
	if !errors.Is(err, keys.ErrAuth) || !strings.Contains(err.Error(), "ALIBABA_CLOUD_ACCESS_KEY_ID") {
		t.Fatalf("Open without credentials = %v; want ErrAuth naming ALIBABA_CLOUD_ACCESS_KEY_ID", err)
	}
	t.Log(err)
}

// TestUnversionedRefWarns: asymmetric keys have no primary version, so an
// unversioned reference takes the newest listed version and, with two, says
// which and how to pin it; a pinned or single-version reference does not warn.
func TestUnversionedRefWarns(t *testing.T) {
	warnings := func(t *testing.T, r string) (keys.Info, []string) {
		t.Helper()
		s, err := keyref.Open(t.Context(), r, keyref.Options{KMS: config(t, shared)})
		if err != nil {
			t.Fatal(err)
		}
		return s.Info(), s.(interface{ Warnings() []string }).Warnings()
	}
	info, w := warnings(t, ref(kmsfake.AliasRSA))
	if info.KeyVersionID != kmsfake.VersionRSA || len(w) != 1 {
		t.Fatalf("unversioned alias of a two-version key: version %s, warnings %q; want %s and one warning", info.KeyVersionID, w, kmsfake.VersionRSA)
	}
	for _, want := range []string{"2 versions", kmsfake.VersionRSA, "?version=" + kmsfake.VersionRSA} {
		if !strings.Contains(w[0], want) {
			t.Errorf("warning %q does not contain %q", w[0], want)
		}
	}
	if _, w := warnings(t, ref(kmsfake.KeyRSA)+"?version="+kmsfake.VersionRSAOld); len(w) != 0 {
		t.Errorf("pinned reference warns: %q", w)
	}
	if _, w := warnings(t, ref(kmsfake.KeyEC)); len(w) != 0 {
		t.Errorf("single-version key warns: %q", w)
	}
	if shared.Calls("ListKeyVersions") == 0 {
		t.Error("the fake saw no ListKeyVersions: the test did not take the service's path")
	}
}

// dedicatedConfig trusts a dedicated-gateway fake's CA.
func dedicatedConfig(t *testing.T, fake *kmsfake.Server) alikms.Config {
	ca := filepath.Join(t.TempDir(), "PrivateKmsCA_kst-test.pem")
	if err := os.WriteFile(ca, fake.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config(t, fake)
	cfg.Endpoint, cfg.CAFile, cfg.Dedicated = "https://"+fake.Endpoint, ca, true
	return cfg
}

// TestDedicatedGateway: a dedicated gateway answers only GetPublicKey and
// AsymmetricSign. With Dedicated set, a versioned reference signs and no
// management call is made; an unversioned one is refused saying to add
// ?version=; without Dedicated the gateway's refusal names the gateway remedy.
func TestDedicatedGateway(t *testing.T) {
	fake, err := kmsfake.NewDedicated()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	cfg := dedicatedConfig(t, fake)

	for _, tc := range []struct{ key, version, spec string }{
		{kmsfake.AliasRSA, kmsfake.VersionRSAOld, keys.SpecRSA2048},
		{kmsfake.KeyEC, kmsfake.VersionEC, keys.SpecECP256},
	} {
		r := ref(tc.key) + "?version=" + tc.version
		s, err := keyref.Open(t.Context(), r, keyref.Options{KMS: cfg})
		if err != nil {
			t.Fatalf("Open(%s) on a dedicated gateway = %v", r, err)
		}
		info := s.Info()
		if info.KeySpec != tc.spec || info.KeyVersionID != tc.version || strings.HasPrefix(info.KeyID, "alias/") {
			t.Fatalf("Info() = %+v; want spec %s version %s and the real key id", info, tc.spec, tc.version)
		}
		d := sha256.Sum256([]byte("dedicated"))
		sig, err := s.SignDigest(t.Context(), d[:])
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.VerifyDigest(fake.PublicKey(info.KeyID, tc.version), info.Algorithm, d[:], sig); err != nil {
			t.Fatalf("signature from the dedicated gateway: %v", err)
		}
	}
	if n := fake.Calls("DescribeKey") + fake.Calls("ListKeyVersions"); n != 0 {
		t.Fatalf("%d management calls reached the dedicated gateway", n)
	}

	_, err = keyref.Open(t.Context(), ref(kmsfake.KeyRSA), keyref.Options{KMS: cfg})
	if err == nil || !strings.Contains(err.Error(), "?version=") || fake.Calls("DescribeKey") != 0 {
		t.Fatalf("Open(unversioned) on a dedicated gateway = %v; want a refusal asking for ?version= before any call", err)
	}

	cfg.Dedicated = false // an endpoint whose name does not say it is dedicated
	_, err = keyref.Open(t.Context(), ref(kmsfake.KeyRSA)+"?version="+kmsfake.VersionRSA, keyref.Options{KMS: cfg})
	var ke *alikms.Error
	if !errors.Is(err, alikms.ErrGateway) || !errors.As(err, &ke) || ke.Code != kmsfake.ManagementOnDedicatedGateway {
		t.Fatalf("DescribeKey on a dedicated gateway = %v; want ErrGateway with %s", err, kmsfake.ManagementOnDedicatedGateway)
	}
	for _, want := range []string{"dedicated gateway", "--kms-dedicated-gateway", "?version=", "shared gateway"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "CreateKey") {
		t.Errorf("error %q gives the create-a-key remedy for a gateway problem", err)
	}
	t.Log(err)
}

func TestIsDedicated(t *testing.T) {
	for ep, want := range map[string]bool{
		"kst-hzz123.cryptoservice.kms.aliyuncs.com":              true,
		"https://kst-hzz123.cryptoservice.kms.aliyuncs.com:443/": true,
		"kms.cn-hangzhou.aliyuncs.com":                           false,
		"kms-vpc.cn-hangzhou.aliyuncs.com":                       false,
		"":                                                       false,
		"https://cryptoservice.kms.aliyuncs.com.attacker.example": false,
	} {
		if got := (alikms.Config{Endpoint: ep}).IsDedicated(); got != want {
			t.Errorf("IsDedicated(%q) = %v; want %v", ep, got, want)
		}
	}
}
