// Package acrfake is a loopback Alibaba Cloud Container Registry (ACR EE)
// for tests: the ACR OpenAPI (2018-12-01) GetAuthorizationToken as
// github.com/alibabacloud-go/cr-20181201/v2 sends it, with its request
// signature checked by internal/acsfake (the KMS fake's check), against
// RAM-role-style temporary credentials that it also serves as a
// credentials endpoint (ALIBABA_CLOUD_CREDENTIALS_URI: the JSON the ECS
// metadata service answers for a role); and a registry wrapper that admits
// only the temporary logins it issued, until they expire.
//
// Only tests import it.
package acrfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nri-csig/nri-csig/internal/acsfake"
)

// The RAM role's temporary credentials, as the metadata service hands
// them out. Obviously fake.
const (
	RoleAccessKeyID     = "STS.FakeRoleAccessKeyId"
	RoleAccessKeySecret = "fake-role-secret-do-not-use"
	RoleSecurityToken   = "fake-role-sts-token"
)

const (
	// InstanceID is the one ACR EE instance the fake knows.
	InstanceID = "cri-fakeinstance01"
	// Region the fake pretends to serve.
	Region = "cn-hangzhou"
	// TempUsername is the login name GetAuthorizationToken hands out.
	TempUsername = "cr_temp_user"
)

// Server is a running fake ACR API and credentials endpoint on 127.0.0.1.
type Server struct {
	*httptest.Server
	// Endpoint is host:port, what acrcred.Options.Endpoint takes (as http://Endpoint).
	Endpoint string

	auth      *acsfake.Checker
	tokenCall atomic.Int64
	credCall  atomic.Int64
	ttl       atomic.Int64 // token life, nanoseconds

	mu     sync.Mutex
	tokens map[string]time.Time // issued password -> expiry
	now    func() time.Time
}

// New starts the fake over plain HTTP on a loopback port. Close it when done.
func New() *Server {
	s := &Server{tokens: map[string]time.Time{}, now: time.Now}
	s.ttl.Store(int64(time.Hour))
	s.auth = acsfake.NewChecker(acsfake.Credential{AccessKeyID: RoleAccessKeyID, AccessKeySecret: RoleAccessKeySecret,
		SecurityToken: RoleSecurityToken, RequireToken: true}, func() time.Time { return s.now() })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ram-role-credentials", s.credentials)
	mux.HandleFunc("/", s.api)
	s.Server = httptest.NewUnstartedServer(mux)
	s.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.Server.Start()
	s.Endpoint = strings.TrimPrefix(s.Server.URL, "http://")
	return s
}

// CredentialsURL is what ALIBABA_CLOUD_CREDENTIALS_URI takes.
func (s *Server) CredentialsURL() string { return s.Server.URL + "/ram-role-credentials" }

// SetTokenTTL sets the life of the tokens issued from now on.
func (s *Server) SetTokenTTL(d time.Duration) { s.ttl.Store(int64(d)) }

// TokenCalls returns how many GetAuthorizationToken calls were answered with a token.
func (s *Server) TokenCalls() int64 { return s.tokenCall.Load() }

// CredentialCalls returns how many times the role's credentials were fetched.
func (s *Server) CredentialCalls() int64 { return s.credCall.Load() }

func (s *Server) credentials(w http.ResponseWriter, _ *http.Request) {
	s.credCall.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"Code": "Success", "AccessKeyId": RoleAccessKeyID, "AccessKeySecret": RoleAccessKeySecret,
		"SecurityToken": RoleSecurityToken, "Expiration": s.now().Add(6 * time.Hour).UTC().Format("2006-01-02T15:04:05Z"),
		"LastUpdated": s.now().UTC().Format("2006-01-02T15:04:05Z"),
	})
}

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	reqID := acsfake.RequestID()
	fail := func(e *acsfake.Error) { acsfake.WriteError(w, "cr."+Region+".aliyuncs.com", "cr", reqID, e) }
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		fail(&acsfake.Error{Status: 400, Code: "InvalidParameter", Message: "cannot read body"})
		return
	}
	if e := s.auth.Check(r, body); e != nil {
		fail(e)
		return
	}
	if v := r.Header.Get("x-acs-version"); v != "2018-12-01" {
		fail(&acsfake.Error{Status: 400, Code: "InvalidVersion", Message: fmt.Sprintf("Specified parameter Version %q is not valid.", v)})
		return
	}
	if a := r.Header.Get("x-acs-action"); a != "GetAuthorizationToken" {
		fail(&acsfake.Error{Status: 404, Code: "InvalidAction.NotFound", Message: fmt.Sprintf("Specified api %q is not found.", a)})
		return
	}
	if id := r.URL.Query().Get("InstanceId"); id != InstanceID {
		fail(&acsfake.Error{Status: 404, Code: "INSTANCE_NOT_EXIST", Message: fmt.Sprintf("instance %q does not exist", id)})
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := "acr-token-" + hex.EncodeToString(b[:])
	exp := s.now().Add(time.Duration(s.ttl.Load()))
	s.mu.Lock()
	s.tokens[tok] = exp
	s.mu.Unlock()
	s.tokenCall.Add(1)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"RequestId": reqID, "IsSuccess": true, "Code": "success",
		"TempUsername": TempUsername, "AuthorizationToken": tok, "ExpireTime": exp.UnixMilli(),
	})
}

// Valid reports whether user and password are a login the fake issued and
// that has not expired.
func (s *Server) Valid(user, password string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[password]
	return ok && user == TempUsername && s.now().Before(exp)
}

// Registry wraps a registry handler: only requests with Basic auth of an
// issued login (or of the admin user and password, for the test's own
// pushes; empty: none) are served, the rest get 401 with a Basic challenge.
// tokenReads counts the requests served with an issued login.
func (s *Server) Registry(h http.Handler, adminUser, adminPassword string, tokenReads *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		switch {
		case ok && s.Valid(u, p):
			if tokenReads != nil {
				tokenReads.Add(1)
			}
		case ok && adminUser != "" && u == adminUser && p == adminPassword:
		default:
			w.Header().Set("WWW-Authenticate", `Basic realm="acrfake"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
