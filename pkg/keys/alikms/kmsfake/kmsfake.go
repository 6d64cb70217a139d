// Package kmsfake is an in-memory Alibaba Cloud KMS endpoint for tests. It speaks
// the KMS OpenAPI (2016-01-20) the way github.com/alibabacloud-go/kms-20160120/v3
// sends it: POST / with the parameters in the query string and an
// ACS3-HMAC-SHA256 Authorization header, which it verifies against one test
// AccessKey. It answers DescribeKey, ListKeyVersions, GetPublicKey and
// AsymmetricSign from in-memory keys, and fails with the KMS error JSON and HTTP
// status that the API documentation lists.
//
// Like the service: DescribeKey reports PrimaryKeyVersion for symmetric keys
// only (an asymmetric key's version comes from ListKeyVersions), and a
// dedicated-gateway endpoint (NewDedicated) serves only the cryptographic
// operations, refusing management calls with Rejected.UnsupportedOperation.
//
// Only tests import it; it holds private keys in memory and checks nothing else.
package kmsfake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nri-csig/nri-csig/internal/acsfake"
)

// Test credentials accepted by the fake. Obviously fake; never real.
const (
	AccessKeyID     = "LTAI5tFakeTestAccessKey"
	AccessKeySecret = "fake-test-secret-do-not-use"
	// SecurityToken is the only STS token accepted when a request carries one.
	SecurityToken = "fake-sts-token"
)

// Region the fake pretends to serve (any region in a reference is accepted).
const Region = "cn-hangzhou"

// The preset keys.
const (
	KeyRSA        = "key-rsa-2048"        // RSA_2048 SIGN/VERIFY, Enabled, versions VersionRSAOld and VersionRSA (primary)
	AliasRSA      = "alias/image-signing" // alias of KeyRSA
	VersionRSA    = "rsa-v2"              // primary version of KeyRSA
	VersionRSAOld = "rsa-v1"              // older version of KeyRSA, different key material
	KeyEC         = "key-ec-p256"         // EC_P256 SIGN/VERIFY, Enabled
	KeyAES        = "key-aes-256"         // Aliyun_AES_256 ENCRYPT/DECRYPT (symmetric), Enabled
	KeyDisabled   = "key-rsa-disabled"    // RSA_2048 SIGN/VERIFY, Disabled
	KeyRSA3072    = "key-rsa-3072"        // RSA_3072 SIGN/VERIFY, Enabled
	VersionEC     = "ec-v1"               // the only version of KeyEC
)

// ManagementOnDedicatedGateway is the error code a dedicated gateway answers
// management calls (DescribeKey, ListKeyVersions, ...) with.
const ManagementOnDedicatedGateway = "Rejected.UnsupportedOperation"

type version struct {
	id      string
	created string
	signer  crypto.Signer // nil for symmetric keys
}

type key struct {
	id, spec, usage, state string
	versions               []*version // last one is primary
}

// Server is a running fake KMS endpoint on 127.0.0.1.
type Server struct {
	*httptest.Server
	// Endpoint is host:port, what the SDK's Config.Endpoint takes.
	Endpoint string

	delay     atomic.Int64 // nanoseconds to sleep before answering
	requests  atomic.Int64
	corrupt   atomic.Bool // flip a bit in every signature
	dedicated bool        // a dedicated gateway: no management operations
	actions   sync.Map    // action name -> *atomic.Int64

	auth *acsfake.Checker // request signatures

	mu      sync.Mutex
	keys    map[string]*key
	aliases map[string]string
	now     func() time.Time
	signed  []time.Time // when each AsymmetricSign was answered
}

// New starts a fake KMS over plain HTTP on a loopback port with the preset keys.
// Close it when done.
func New() (*Server, error) { return start(false, false) }

// NewTLS is New over HTTPS with httptest's self-signed certificate: write
// CertPEM to a file for Config.CAFile.
func NewTLS() (*Server, error) { return start(true, false) }

// NewDedicated is a dedicated gateway (<kst-id>.cryptoservice.kms.aliyuncs.com):
// HTTPS with its own CA (CertPEM), answering GetPublicKey and AsymmetricSign only.
func NewDedicated() (*Server, error) { return start(true, true) }

// CertPEM returns the server certificate in PEM (TLS servers only).
func (s *Server) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

func start(useTLS, dedicated bool) (*Server, error) {
	s := &Server{keys: map[string]*key{}, aliases: map[string]string{}, now: time.Now, dedicated: dedicated}
	s.auth = acsfake.NewChecker(acsfake.Credential{AccessKeyID: AccessKeyID, AccessKeySecret: AccessKeySecret, SecurityToken: SecurityToken}, func() time.Time { return s.now() })
	add := func(id, spec, usage, state string, versions ...string) error {
		k := &key{id: id, spec: spec, usage: usage, state: state}
		for i, v := range versions {
			ver := &version{id: v, created: time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)}
			var err error
			if ver.signer, err = material(id+"/"+v, spec); err != nil {
				return err
			}
			k.versions = append(k.versions, ver)
		}
		s.keys[id] = k
		return nil
	}
	for _, err := range []error{
		add(KeyRSA, "RSA_2048", "SIGN/VERIFY", "Enabled", VersionRSAOld, VersionRSA),
		add(KeyEC, "EC_P256", "SIGN/VERIFY", "Enabled", VersionEC),
		add(KeyAES, "Aliyun_AES_256", "ENCRYPT/DECRYPT", "Enabled", "aes-v1"),
		add(KeyDisabled, "RSA_2048", "SIGN/VERIFY", "Disabled", "disabled-v1"),
		add(KeyRSA3072, "RSA_3072", "SIGN/VERIFY", "Enabled", "rsa3072-v1"),
	} {
		if err != nil {
			return nil, err
		}
	}
	s.aliases[AliasRSA] = KeyRSA
	s.Server = httptest.NewUnstartedServer(s)
	// Handshake failures are what the untrusted-CA tests provoke; keep them quiet.
	s.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	if useTLS {
		s.Server.StartTLS()
	} else {
		s.Server.Start()
	}
	s.Endpoint = strings.TrimPrefix(strings.TrimPrefix(s.Server.URL, "http://"), "https://")
	return s, nil
}

// SetDelay makes every answer wait d first (for timeout tests).
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// SetKeyState changes a key's state (Enabled, Disabled, PendingDeletion).
func (s *Server) SetKeyState(keyID, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[keyID].state = state
}

// Requests returns how many requests the fake has received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Calls returns how many requests named action (e.g. "AsymmetricSign") the fake
// has received, answered or not.
func (s *Server) Calls(action string) int64 {
	if n, ok := s.actions.Load(action); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// SignTimes returns when each successful AsymmetricSign was answered, in order.
func (s *Server) SignTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.signed...)
}

// CorruptSignatures makes AsymmetricSign answer signatures with one bit
// flipped (a mis-encoded answer), until called with false.
func (s *Server) CorruptSignatures(on bool) { s.corrupt.Store(on) }

// PublicKey returns the public key of a key version, for checking signatures.
func (s *Server) PublicKey(keyID, versionID string) crypto.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.keys[keyID].versions {
		if v.id == versionID && v.signer != nil {
			return v.signer.Public()
		}
	}
	return nil
}

// materials caches generated key pairs per key version for the whole test
// binary: RSA generation dominates start-up, and fakes never share state otherwise.
var materials sync.Map // "key/version" -> crypto.Signer (nil for symmetric keys)

func material(name, spec string) (crypto.Signer, error) {
	if m, ok := materials.Load(name); ok {
		s, _ := m.(crypto.Signer)
		return s, nil
	}
	var (
		s   crypto.Signer
		err error
	)
	switch spec {
	case "RSA_2048":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "RSA_3072":
		s, err = rsa.GenerateKey(rand.Reader, 3072)
	case "EC_P256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, err
	}
	m, _ := materials.LoadOrStore(name, s)
	s, _ = m.(crypto.Signer)
	return s, nil
}

// kmsError is the KMS error JSON.
type kmsError = acsfake.Error

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	reqID := acsfake.RequestID()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		acsfake.WriteError(w, "kms.cn-hangzhou.aliyuncs.com", "Kms", reqID, &kmsError{Status: 400, Code: "InvalidParameter", Message: "cannot read body"})
		return
	}
	if kerr := s.auth.Check(r, body); kerr != nil {
		acsfake.WriteError(w, "kms.cn-hangzhou.aliyuncs.com", "Kms", reqID, kerr)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		acsfake.WriteError(w, "kms.cn-hangzhou.aliyuncs.com", "Kms", reqID, &kmsError{Status: 403, Code: "UnsupportedHTTPMethod", Message: "This http method is not supported."})
		return
	}
	if v := r.Header.Get("x-acs-version"); v != "2016-01-20" {
		acsfake.WriteError(w, "kms.cn-hangzhou.aliyuncs.com", "Kms", reqID, &kmsError{Status: 400, Code: "InvalidVersion", Message: fmt.Sprintf("Specified parameter Version %q is not valid.", v)})
		return
	}
	params := r.URL.Query()
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, _ := url.ParseQuery(string(body))
		for k, v := range form {
			params[k] = v
		}
	}
	var (
		out  map[string]any
		kerr *kmsError
	)
	action := r.Header.Get("x-acs-action")
	n, _ := s.actions.LoadOrStore(action, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	switch {
	case s.dedicated && action != "GetPublicKey" && action != "AsymmetricSign" && action != "AsymmetricVerify":
		// Management goes through the shared gateway only.
		kerr = &kmsError{Status: 400, Code: ManagementOnDedicatedGateway, Message: "This operation is not supported by the dedicated gateway."}
	}
	if kerr != nil {
		acsfake.WriteError(w, "kms.cn-hangzhou.aliyuncs.com", "Kms", reqID, kerr)
		return
	}
	switch action {
	case "DescribeKey":
		out, kerr = s.describeKey(params)
	case "ListKeyVersions":
		out, kerr = s.listKeyVersions(params)
	case "GetPublicKey":
		out, kerr = s.getPublicKey(params)
	case "AsymmetricSign":
		out, kerr = s.asymmetricSign(params)
	default:
		kerr = &kmsError{Status: 404, Code: "InvalidAction.NotFound", Message: fmt.Sprintf("Specified api %q is not found, please check your url and method.", action)}
	}
	if kerr != nil {
		acsfake.WriteError(w, "kms.cn-hangzhou.aliyuncs.com", "Kms", reqID, kerr)
		return
	}
	out["RequestId"] = reqID
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_ = json.NewEncoder(w).Encode(out)
}

// lookup resolves a key id or alias. Callers hold s.mu.
func (s *Server) lookup(id string) (*key, *kmsError) {
	if id == "" {
		return nil, &kmsError{Status: 400, Code: "MissingParameter", Message: "The parameter \"KeyId\" is needed but not provided."}
	}
	if strings.HasPrefix(id, "alias/") {
		real, ok := s.aliases[id]
		if !ok {
			return nil, &kmsError{Status: 404, Code: "Forbidden.AliasNotFound", Message: "The specified Alias is not found."}
		}
		id = real
	}
	k, ok := s.keys[id]
	if !ok {
		return nil, &kmsError{Status: 404, Code: "Forbidden.KeyNotFound", Message: "The specified Key is not found."}
	}
	return k, nil
}

func (k *key) version(id string) (*version, *kmsError) {
	if id == "" {
		return nil, &kmsError{Status: 400, Code: "MissingParameter", Message: "The parameter \"KeyVersionId\" is needed but not provided."}
	}
	for _, v := range k.versions {
		if v.id == id {
			return v, nil
		}
	}
	return nil, &kmsError{Status: 404, Code: "Forbidden.KeyVersionNotFound", Message: "The specified KeyVersion is not found."}
}

func (k *key) usable(asymmetric bool) *kmsError {
	switch k.state {
	case "Enabled":
	case "Disabled":
		return &kmsError{Status: 409, Code: "Rejected.Disabled", Message: "The request was rejected because the key state is Disabled."}
	case "PendingDeletion":
		return &kmsError{Status: 409, Code: "Rejetced.PendingDeletion", Message: "The request was rejected because the key state is PendingDeletion."}
	default:
		return &kmsError{Status: 409, Code: "Rejected.StateModifiedFailed", Message: "Keystate is " + k.state + "."}
	}
	if asymmetric && k.usage != "SIGN/VERIFY" {
		return &kmsError{Status: 400, Code: "Rejected.UnsupportedOperation", Message: "Unsupported operation."}
	}
	return nil
}

func (s *Server) describeKey(p url.Values) (map[string]any, *kmsError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, kerr := s.lookup(p.Get("KeyId"))
	if kerr != nil {
		return nil, kerr
	}
	md := map[string]any{
		"KeyId": k.id, "KeySpec": k.spec, "KeyUsage": k.usage, "KeyState": k.state,
		"Arn": "acs:kms:" + Region + ":1234567890:key/" + k.id, "Origin": "Aliyun_KMS", "ProtectionLevel": "SOFTWARE",
		"CreationDate": k.versions[0].created, "Creator": "1234567890", "Description": "kmsfake",
		"AutomaticRotation": "Disabled", "DeletionProtection": "Disabled",
	}
	if !strings.HasPrefix(k.usage, "SIGN") {
		// A symmetric-key field: asymmetric keys have no primary version.
		md["PrimaryKeyVersion"] = k.versions[len(k.versions)-1].id
	}
	return map[string]any{"KeyMetadata": md}, nil
}

func (s *Server) listKeyVersions(p url.Values) (map[string]any, *kmsError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, kerr := s.lookup(p.Get("KeyId"))
	if kerr != nil {
		return nil, kerr
	}
	page, size := atoiOr(p.Get("PageNumber"), 1), atoiOr(p.Get("PageSize"), 10)
	if page < 1 || size < 1 || size > 100 {
		return nil, &kmsError{Status: 400, Code: "InvalidParameter", Message: "The specified parameter \"PageSize\" is not valid."}
	}
	list := []map[string]any{}
	for i, v := range k.versions {
		if i >= (page-1)*size && i < page*size {
			list = append(list, map[string]any{"KeyId": k.id, "KeyVersionId": v.id, "CreationDate": v.created})
		}
	}
	return map[string]any{"KeyVersions": map[string]any{"KeyVersion": list}, "PageNumber": page, "PageSize": size, "TotalCount": len(k.versions)}, nil
}

func (s *Server) getPublicKey(p url.Values) (map[string]any, *kmsError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, kerr := s.lookup(p.Get("KeyId"))
	if kerr != nil {
		return nil, kerr
	}
	if kerr := k.usable(true); kerr != nil && k.usage != "SIGN/VERIFY" {
		return nil, kerr
	}
	v, kerr := k.version(p.Get("KeyVersionId"))
	if kerr != nil {
		return nil, kerr
	}
	der, err := x509.MarshalPKIXPublicKey(v.signer.Public())
	if err != nil {
		return nil, &kmsError{Status: 500, Code: "InternalFailure", Message: "Internal Failure."}
	}
	return map[string]any{"KeyId": k.id, "KeyVersionId": v.id, "PublicKey": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}, nil
}

func (s *Server) asymmetricSign(p url.Values) (map[string]any, *kmsError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, kerr := s.lookup(p.Get("KeyId"))
	if kerr != nil {
		return nil, kerr
	}
	if kerr := k.usable(true); kerr != nil {
		return nil, kerr
	}
	v, kerr := k.version(p.Get("KeyVersionId"))
	if kerr != nil {
		return nil, kerr
	}
	digest, err := base64.StdEncoding.DecodeString(p.Get("Digest"))
	if err != nil || len(digest) != sha256.Size {
		return nil, &kmsError{Status: 400, Code: "InvalidParameter", Message: "The specified parameter \"Digest\" is not valid."}
	}
	var sig []byte
	switch alg := p.Get("Algorithm"); {
	case alg == "RSA_PKCS1_SHA_256" && strings.HasPrefix(k.spec, "RSA_"):
		sig, err = rsa.SignPKCS1v15(nil, v.signer.(*rsa.PrivateKey), crypto.SHA256, digest)
	case alg == "RSA_PSS_SHA_256" && strings.HasPrefix(k.spec, "RSA_"):
		// KMS does not document its salt length; salt = hash length is the common choice.
		sig, err = rsa.SignPSS(rand.Reader, v.signer.(*rsa.PrivateKey), crypto.SHA256, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case alg == "ECDSA_SHA_256" && k.spec == "EC_P256":
		sig, err = ecdsa.SignASN1(rand.Reader, v.signer.(*ecdsa.PrivateKey), digest)
	default:
		return nil, &kmsError{Status: 400, Code: "InvalidParameter", Message: fmt.Sprintf("The specified parameter \"Algorithm\" %q is not valid for %s.", alg, k.spec)}
	}
	if err != nil {
		return nil, &kmsError{Status: 500, Code: "InternalFailure", Message: "Internal Failure."}
	}
	if s.corrupt.Load() {
		sig[len(sig)/2] ^= 0x01
	}
	s.signed = append(s.signed, s.now())
	return map[string]any{"KeyId": k.id, "KeyVersionId": v.id, "Value": base64.StdEncoding.EncodeToString(sig)}, nil
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
