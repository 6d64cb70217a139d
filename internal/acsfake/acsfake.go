// Package acsfake is the one request-signature check of nri-csig's loopback
// fakes of Alibaba Cloud OpenAPI services (the KMS fake, the ACR fake): it
// verifies an ACS3-HMAC-SHA256 Authorization header as the POP gateway
// does, the way github.com/alibabacloud-go/darabonba-openapi signs a
// request (canonical request over the method, path, sorted query, the
// signed headers and the payload hash), refuses a replayed nonce or a
// timestamp off by more than 15 minutes, and checks the STS security token
// when the credential has one. Errors carry the service's codes and HTTP
// statuses.
//
// Only tests and their fakes import it; it checks nothing else.
package acsfake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Credential is what a fake accepts: one AccessKey, and the STS token that
// goes with it. With RequireToken, a request without the token is refused
// (temporary credentials, as a RAM role's); without, a request may carry
// none but a wrong one is refused.
type Credential struct {
	AccessKeyID, AccessKeySecret, SecurityToken string
	RequireToken                                bool
}

// Error is an OpenAPI error answer.
type Error struct {
	Status        int
	Code, Message string
}

// Checker verifies request signatures for one credential. It is safe for
// concurrent use.
type Checker struct {
	cred Credential
	now  func() time.Time

	mu     sync.Mutex
	nonces map[string]bool
}

// NewChecker returns a Checker for cred; now is the fake's clock (nil: time.Now).
func NewChecker(cred Credential, now func() time.Time) *Checker {
	if now == nil {
		now = time.Now
	}
	return &Checker{cred: cred, now: now, nonces: map[string]bool{}}
}

// Check verifies r's signature over body (the request body, already read).
func (c *Checker) Check(r *http.Request, body []byte) *Error {
	auth := r.Header.Get("Authorization")
	const alg = "ACS3-HMAC-SHA256 "
	incomplete := &Error{400, "IncompleteSignature", "The request signature does not conform to Alibaba Cloud standards."}
	if !strings.HasPrefix(auth, alg) {
		return incomplete
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, alg), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	ak, signedHeaders, sig := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if ak == "" || signedHeaders == "" || sig == "" {
		return incomplete
	}
	if ak != c.cred.AccessKeyID {
		return &Error{404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."}
	}
	names := strings.Split(signedHeaders, ";")
	for _, need := range []string{"host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"} {
		if !slices.Contains(names, need) {
			return &Error{400, "IncompleteSignature", fmt.Sprintf("The request signature does not conform to Alibaba Cloud standards: header %s is not signed.", need)}
		}
	}
	sum := sha256.Sum256(body)
	if r.Header.Get("x-acs-content-sha256") != hex.EncodeToString(sum[:]) {
		return &Error{400, "SignatureDoesNotMatch", "The payload hash does not match x-acs-content-sha256."}
	}
	date, err := time.Parse("2006-01-02T15:04:05Z", r.Header.Get("x-acs-date"))
	if err != nil {
		return &Error{400, "IllegalTimestamp", "The input parameter \"Timestamp\" that is required for processing this request is not supplied."}
	}
	if skew := c.now().Sub(date); skew > 15*time.Minute || skew < -15*time.Minute {
		return &Error{400, "IllegalTimestamp", "Specified time stamp or date value is expired."}
	}

	// Canonical request, as darabonba-openapi's GetAuthorization builds it.
	query := r.URL.Query()
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cq []string
	for _, k := range keys {
		cq = append(cq, k+"="+pct(query.Get(k)))
	}
	var ch strings.Builder
	for _, name := range names {
		val := r.Header.Get(name)
		if name == "host" {
			val = r.Host
		}
		ch.WriteString(name + ":" + strings.TrimSpace(val) + "\n")
	}
	canonical := r.Method + "\n/\n" + strings.Join(cq, "&") + "\n" + ch.String() + "\n" + signedHeaders + "\n" + hex.EncodeToString(sum[:])
	hc := sha256.Sum256([]byte(canonical))
	mac := hmac.New(sha256.New, []byte(c.cred.AccessKeySecret))
	mac.Write([]byte("ACS3-HMAC-SHA256\n" + hex.EncodeToString(hc[:])))
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(sig)) {
		return &Error{400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."}
	}
	tok := r.Header.Get("x-acs-security-token")
	tokenSigned := slices.Contains(names, "x-acs-security-token")
	switch {
	case tok == "" && !tokenSigned && c.cred.RequireToken:
		return &Error{400, "MissingSecurityToken", "The SecurityToken of these temporary credentials is missing."}
	case (tok != "" || tokenSigned) && !tokenSigned:
		return &Error{400, "IncompleteSignature", "The request signature does not conform to Alibaba Cloud standards: header x-acs-security-token is not signed."}
	case (tok != "" || tokenSigned) && tok != c.cred.SecurityToken:
		return &Error{400, "InvalidSecurityToken.Mismatch", "Specified SecurityToken mismatch with the AccessKey."}
	}
	nonce := r.Header.Get("x-acs-signature-nonce")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nonces[nonce] {
		return &Error{400, "SignatureNonceUsed", "Specified signature nonce was used already."}
	}
	c.nonces[nonce] = true
	return nil
}

// WriteError writes e as the OpenAPI error JSON of product (e.g. "Kms")
// served at host.
func WriteError(w http.ResponseWriter, host, product, reqID string, e *Error) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"RequestId": reqID, "HttpStatus": e.Status, "HostId": host,
		"Code": e.Code, "Message": e.Message,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + e.Code + "&product=" + product + "&requestId=" + reqID,
	})
}

// RequestID returns a new request id in the services' format.
func RequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return strings.ToUpper(h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:])
}

// pct is RFC 3986 percent-encoding as the SDK's canonical query uses it.
func pct(s string) string {
	s = url.QueryEscape(s)
	s = strings.ReplaceAll(s, "+", "%20")
	s = strings.ReplaceAll(s, "*", "%2A")
	return strings.ReplaceAll(s, "%7E", "~")
}
