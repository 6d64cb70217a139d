package credprovider

// The wire types below mirror k8s.io/kubelet v1 (config/v1's
// CredentialProviderConfig, pkg/apis/credentialprovider/v1's request and
// response) and the two apimachinery types they use (metav1.TypeMeta and
// metav1.Duration), field for field and tag for tag. Why not import them:
// those packages link all of k8s.io/apimachinery (runtime, serializers,
// cbor, json-iterator, structured-merge-diff, klog) into nri-csigd, about
// 6 MB of binary that is mostly resident in every daemon (a Go process's
// file-backed RSS is about its binary); the daemon's memory target at
// 10,000 images does not leave room for that. wire_test.go pins the mirror
// to upstream: it compares both type trees' JSON names, options and kinds
// and round-trips documents through both, so a renamed, missing or added
// field fails the tests, also after a k8s.io/kubelet upgrade.

import (
	"encoding/json"
	"time"
)

// TypeMeta is metav1.TypeMeta: kind and apiVersion, inlined (`json:""`).
type TypeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// Duration is metav1.Duration: a time.Duration whose JSON form is a Go
// duration string ("12h", "1m30s").
type Duration struct {
	time.Duration
}

// UnmarshalJSON accepts a string time.ParseDuration accepts, as metav1's.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	pd, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = pd
	return nil
}

// MarshalJSON writes the duration's String form, as metav1's.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// CredentialProviderConfig is kubelet.config.k8s.io/v1
// CredentialProviderConfig, the file given to kubelet's
// --image-credential-provider-config.
type CredentialProviderConfig struct {
	TypeMeta `json:""`

	Providers []CredentialProvider `json:"providers"`
}

// CredentialProvider is one exec plugin of a CredentialProviderConfig.
type CredentialProvider struct {
	Name                 string                         `json:"name"`
	MatchImages          []string                       `json:"matchImages"`
	DefaultCacheDuration *Duration                      `json:"defaultCacheDuration"`
	APIVersion           string                         `json:"apiVersion"`
	Args                 []string                       `json:"args,omitempty"`
	Env                  []ExecEnvVar                   `json:"env,omitempty"`
	TokenAttributes      *ServiceAccountTokenAttributes `json:"tokenAttributes,omitempty"`
}

// ServiceAccountTokenCacheType is how kubelet caches the answers of a
// provider in service-account-token mode.
type ServiceAccountTokenCacheType string

// The ServiceAccountTokenCacheType values.
const (
	TokenServiceAccountTokenCacheType          ServiceAccountTokenCacheType = "Token"
	ServiceAccountServiceAccountTokenCacheType ServiceAccountTokenCacheType = "ServiceAccount"
)

// ServiceAccountTokenAttributes puts a provider in service-account-token
// mode (kubelet passes it a pod's token). nri-csig reads it only to skip
// such a provider.
type ServiceAccountTokenAttributes struct {
	ServiceAccountTokenAudience          string                       `json:"serviceAccountTokenAudience"`
	CacheType                            ServiceAccountTokenCacheType `json:"cacheType"`
	RequireServiceAccount                *bool                        `json:"requireServiceAccount"`
	RequiredServiceAccountAnnotationKeys []string                     `json:"requiredServiceAccountAnnotationKeys,omitempty"`
	OptionalServiceAccountAnnotationKeys []string                     `json:"optionalServiceAccountAnnotationKeys,omitempty"`
}

// ExecEnvVar is an environment variable of a plugin run.
type ExecEnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// CredentialProviderRequest is credentialprovider.kubelet.k8s.io/v1
// CredentialProviderRequest, a plugin's stdin.
type CredentialProviderRequest struct {
	TypeMeta `json:""`

	Image                     string            `json:"image"`
	ServiceAccountToken       string            `json:"serviceAccountToken,omitempty"`
	ServiceAccountAnnotations map[string]string `json:"serviceAccountAnnotations,omitempty"`
}

// PluginCacheKeyType is what a plugin's answer is cached under.
type PluginCacheKeyType string

// The PluginCacheKeyType values.
const (
	ImagePluginCacheKeyType    PluginCacheKeyType = "Image"
	RegistryPluginCacheKeyType PluginCacheKeyType = "Registry"
	GlobalPluginCacheKeyType   PluginCacheKeyType = "Global"
)

// CredentialProviderResponse is credentialprovider.kubelet.k8s.io/v1
// CredentialProviderResponse, a plugin's stdout.
type CredentialProviderResponse struct {
	TypeMeta `json:""`

	CacheKeyType  PluginCacheKeyType    `json:"cacheKeyType"`
	CacheDuration *Duration             `json:"cacheDuration,omitempty"`
	Auth          map[string]AuthConfig `json:"auth,omitempty"`
}

// AuthConfig is one credential of a CredentialProviderResponse.
type AuthConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
}
