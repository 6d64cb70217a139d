package alikms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/alibabacloud-go/tea/tea"

	"github.com/nri-csig/nri-csig/pkg/keys"
)

// ErrGateway is the class of calls the KMS gateway in use does not serve, e.g.
// DescribeKey on a dedicated gateway.
var ErrGateway = errors.New("operation not served by this KMS gateway")

// Error is a failed KMS call. Its message says what to do; errors.Is matches its
// class (keys.ErrAuth, keys.ErrKeyNotFound, ...) and errors.As reaches the cause
// (*tea.SDKError for answers from KMS, net or context errors otherwise).
type Error struct {
	Op        string // SDK operation, e.g. "AsymmetricSign"
	Code      string // KMS error code, empty when KMS did not answer
	Status    int    // HTTP status, 0 when KMS did not answer
	RequestID string // KMS RequestId, quote it to Alibaba Cloud support
	class     error
	msg       string
	cause     error
}

func (e *Error) Error() string {
	s := e.msg
	if e.Code != "" {
		s += fmt.Sprintf(" [KMS %s, HTTP %d, RequestId %s]", e.Code, e.Status, orUnknown(e.RequestID))
	}
	return s
}

// Unwrap returns the class and the cause.
func (e *Error) Unwrap() []error {
	errs := []error{e.cause}
	if e.class != nil {
		errs = append(errs, e.class)
	}
	return errs
}

// explain turns an SDK error into an *Error whose message says what to do.
func explain(op, endpoint, keyID string, err error) error {
	var ke *Error
	if errors.As(err, &ke) || errors.Is(err, keys.ErrUnsupportedKey) {
		return err
	}
	e := &Error{Op: op, cause: err}
	prefix := fmt.Sprintf("alikms %s %s on %s", op, keyID, endpoint)
	var (
		se  *tea.SDKError
		ne  net.Error
		ua  x509.UnknownAuthorityError
		cve *tls.CertificateVerificationError
		hn  x509.HostnameError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		e.class = keys.ErrUnavailable
		e.msg = fmt.Sprintf("%s: timed out: check that the endpoint is reachable from this host (proxy, firewall) or allow more time (--kms-timeout): %v", prefix, err)
	case errors.Is(err, context.Canceled):
		e.msg = fmt.Sprintf("%s: canceled", prefix)
	case errors.As(err, &ua) || errors.As(err, &cve) || errors.As(err, &hn):
		e.class = keys.ErrUnavailable
		e.msg = fmt.Sprintf("%s: the endpoint's TLS certificate is not trusted: for a dedicated gateway (<kst-id>.cryptoservice.kms.aliyuncs.com) pass the KMS instance CA with --kms-ca: %v", prefix, err)
	case errors.As(err, &se) && se.Code != nil && tea.StringValue(se.Code) != "":
		explainSDK(e, prefix, se)
	case errors.As(err, &ne):
		e.class = keys.ErrUnavailable
		e.msg = fmt.Sprintf("%s: cannot reach the KMS endpoint: check --kms-endpoint, DNS, firewall and HTTPS_PROXY/NO_PROXY: %v", prefix, err)
	case strings.Contains(strings.ToLower(err.Error()), "credential"):
		e.class = keys.ErrAuth
		e.msg = fmt.Sprintf("%s: no usable Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET "+
			"(plus ALIBABA_CLOUD_SECURITY_TOKEN for STS), or run with an ECS RAM role or RRSA (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE): %v", prefix, err)
	default:
		e.msg = fmt.Sprintf("%s: %v", prefix, err)
	}
	return e
}

func explainSDK(e *Error, prefix string, se *tea.SDKError) {
	e.Code = tea.StringValue(se.Code)
	e.Status = tea.IntValue(se.StatusCode)
	var data map[string]any
	_ = json.Unmarshal([]byte(tea.StringValue(se.Data)), &data)
	if id, ok := data["RequestId"].(string); ok {
		e.RequestID = id
	} else if id, ok := data["requestId"].(string); ok {
		e.RequestID = id
	}
	if e.Status == 0 {
		if s, ok := data["statusCode"].(float64); ok {
			e.Status = int(s)
		} else if s, ok := data["HttpStatus"].(float64); ok {
			e.Status = int(s)
		}
	}
	server, _ := data["Message"].(string)
	if server == "" {
		server = tea.StringValue(se.Message)
	}
	code := e.Code
	var what string
	switch {
	case strings.HasPrefix(code, "InvalidAccessKeyId"):
		e.class, what = keys.ErrAuth, "the AccessKey ID is unknown or inactive: check ALIBABA_CLOUD_ACCESS_KEY_ID (or the RAM role) belongs to the account that owns the key"
	case code == "SignatureDoesNotMatch" || code == "IncompleteSignature" || code == "InvalidSignature":
		e.class, what = keys.ErrAuth, "KMS rejected the request signature: the AccessKey secret is wrong; check ALIBABA_CLOUD_ACCESS_KEY_SECRET"
	case strings.HasPrefix(code, "InvalidSecurityToken") || code == "MissingSecurityToken":
		e.class, what = keys.ErrAuth, "the STS token is invalid or expired: refresh ALIBABA_CLOUD_SECURITY_TOKEN or use a role that renews it (ECS RAM role, RRSA)"
	case code == "InvalidCredentials":
		e.class, what = keys.ErrAuth, "no usable Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET, or use an ECS RAM role or RRSA"
	case code == "IllegalTimestamp" || code == "RequestTimeTooSkewed" || strings.HasPrefix(code, "InvalidTimeStamp") || code == "SignatureNonceUsed":
		e.class, what = keys.ErrAuth, "KMS rejected the request time: sync this host's clock (NTP)"
	case code == "Forbidden.AccessKey":
		e.class, what = keys.ErrAuth, "the AccessKey is disabled: enable it in RAM or use another one"
	case code == "Forbidden" || code == "Forbidden.RAM" || strings.Contains(code, "AccessDenied") || strings.Contains(code, "NoPermission") || strings.Contains(code, "Unauthorized"):
		e.class, what = keys.ErrAuth, "access denied: grant the RAM identity kms:DescribeKey, kms:GetPublicKey, kms:ListKeyVersions and kms:AsymmetricSign on this key"
	case strings.HasPrefix(code, "Forbidden.") && !strings.Contains(code, "NotFound"):
		// Account-level refusals: KmsServiceNotEnabled, InDebt, ProhibitedByRiskControl, ...
		e.class, what = keys.ErrAuth, "KMS refused this account: check the account's KMS service status in the console"
	case strings.Contains(code, "NotFound") || strings.Contains(code, "NotExist"):
		e.class, what = keys.ErrKeyNotFound, "the key, alias or key version does not exist in this region: check the region and key id in the reference, or create the key with `aliyun kms CreateKey --KeySpec RSA_2048 --KeyUsage SIGN/VERIFY`"
	case strings.Contains(code, "Disabled") || strings.Contains(code, "PendingDeletion") || strings.Contains(code, "PendingImport") || strings.Contains(code, "InvalidState"):
		// Documented: Rejected.Disabled, Rejetced.PendingDeletion (sic), Rejected.PendingImport, all HTTP 409.
		e.class, what = keys.ErrKeyDisabled, "the key is not enabled: enable it (`aliyun kms EnableKey`) or use another key"
	case code == "Rejected.UnsupportedOperation" && (e.Op == "DescribeKey" || e.Op == "ListKeyVersions"):
		// What a dedicated gateway answers management calls with (the KMS common error codes).
		e.class, what = ErrGateway, "this gateway does not serve "+e.Op+", a management call: it is a dedicated gateway (KST-ID.cryptoservice.kms.aliyuncs.com), "+
			"which serves only GetPublicKey and AsymmetricSign: pass --kms-dedicated-gateway and name the key version with ?version=<key-version-id>, "+
			"or use the shared gateway kms.REGION.aliyuncs.com (or the VPC gateway kms-vpc.REGION.aliyuncs.com)"
	case code == "Rejected.UnsupportedOperation":
		e.class, what = keys.ErrUnsupportedKey, "KMS does not support "+e.Op+" for this key or on this gateway: check that the key is an asymmetric SIGN/VERIFY key ("+
			keys.CreateHint+") and that the gateway serves the operation (the shared gateway kms.REGION.aliyuncs.com serves all)"
	case strings.Contains(code, "Unsupported") || strings.Contains(code, "InvalidKeyUsage") || strings.Contains(code, "InvalidKeySpec"):
		e.class, what = keys.ErrUnsupportedKey, "the key cannot sign: "+keys.CreateHint
	case strings.HasPrefix(code, "Throttling") || code == "ServiceUnavailableTemporary":
		e.class, what = keys.ErrUnavailable, "KMS throttled the request: retry later or sign less often"
	case e.Status >= 500:
		e.class, what = keys.ErrUnavailable, "KMS failed on its side: retry later"
	default:
		what = "KMS refused the request"
	}
	e.msg = fmt.Sprintf("%s: %s", prefix, what)
	if server != "" {
		e.msg += " (KMS says: " + server + ")"
	}
}
