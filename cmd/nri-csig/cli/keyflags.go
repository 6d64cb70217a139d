//go:build !nodeonly

package cli

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms"
)

// keyFlagsHelp is appended to the Long help of every command taking --key.
const keyFlagsHelp = `
Keys (--key):
  PATH or file://PATH        a local PEM key: RSA >= 2048 bits or ECDSA P-256, unencrypted
                             PKCS#1/PKCS#8/SEC1 (cosign's encrypted keys are not read)
  alikms://REGION/KEY[?version=VERSION]
                             an Alibaba Cloud KMS key (RSA_2048, RSA_3072 or EC_P256,
                             SIGN/VERIFY), by key id or alias, e.g.
                             alikms://cn-hangzhou/alias/image-signing; without
                             ?version the newest version (ListKeyVersions) is used, with a warning
                             when the key has several: pin the version the witness lists

Alibaba Cloud KMS:
  Endpoint: the shared gateway kms.REGION.aliyuncs.com unless --kms-endpoint names another:
  the VPC endpoint kms-vpc.REGION.aliyuncs.com, or a dedicated gateway
  KST-ID.cryptoservice.kms.aliyuncs.com with --kms-ca set to the instance CA
  (PrivateKmsCA_kst-*.pem). A dedicated gateway serves GetPublicKey and AsymmetricSign
  only, no DescribeKey or ListKeyVersions: the key reference must then name ?version=ID
  and no management call is made (the key spec is read from the public key). Endpoints
  named *.cryptoservice.kms.aliyuncs.com are dedicated; --kms-dedicated-gateway says so
  for any other name (a private DNS name or IP).
  HTTPS_PROXY/NO_PROXY are honoured (loopback is never proxied).
  Every KMS call is bounded by --kms-connect-timeout plus --kms-timeout.
  Credentials are never flags; they come from credentials-go's default chain:
    ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET   AccessKey
    ALIBABA_CLOUD_SECURITY_TOKEN                                   + STS token
    ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN,
    ALIBABA_CLOUD_OIDC_TOKEN_FILE                                  RRSA (ACK pod identity)
    ~/.aliyun/config.json, ALIBABA_CLOUD_CREDENTIALS_FILE          profiles
    ECS instance RAM role (ALIBABA_CLOUD_ECS_METADATA names the role;
                           ALIBABA_CLOUD_ECS_METADATA_DISABLED=true skips the metadata service)
  The RAM identity needs kms:DescribeKey, kms:ListKeyVersions, kms:GetPublicKey and
  kms:AsymmetricSign on the key (kms:GetPublicKey and kms:AsymmetricSign on a dedicated gateway).

Every key flag can also be set through the environment variable shown in its help.`

// keyOptions are the key flags shared by public-key, sign, witness create and
// bundle sign. Flags win over their NRI_CSIG_* environment variables.
type keyOptions struct {
	Key               string
	Algorithm         string
	KMSEndpoint       string
	KMSCA             string
	KMSTimeout        time.Duration
	KMSConnectTimeout time.Duration
	KMSDedicated      bool

	cmd *cobra.Command
}

// keyFlagEnv maps each flag to its environment variable.
var keyFlagEnv = map[string]string{
	"key":                   "NRI_CSIG_KEY",
	"signature-algorithm":   "NRI_CSIG_SIGNATURE_ALGORITHM",
	"kms-endpoint":          "NRI_CSIG_KMS_ENDPOINT",
	"kms-ca":                "NRI_CSIG_KMS_CA",
	"kms-timeout":           "NRI_CSIG_KMS_TIMEOUT",
	"kms-connect-timeout":   "NRI_CSIG_KMS_CONNECT_TIMEOUT",
	"kms-dedicated-gateway": "NRI_CSIG_KMS_DEDICATED_GATEWAY",
}

// AddFlags registers the key flags on cmd.
func (o *keyOptions) AddFlags(cmd *cobra.Command) {
	o.cmd = cmd
	f := cmd.Flags()
	f.StringVar(&o.Key, "key", "", "key reference: PEM file path or alikms://REGION/KEY-ID-OR-ALIAS[?version=ID] ($NRI_CSIG_KEY)")
	f.StringVar(&o.Algorithm, "signature-algorithm", "", "RSA_PKCS1_SHA_256 (default for RSA, what cosign verifies), RSA_PSS_SHA_256, or ECDSA_SHA_256 (EC keys) ($NRI_CSIG_SIGNATURE_ALGORITHM)")
	f.StringVar(&o.KMSEndpoint, "kms-endpoint", "", "KMS endpoint host[:port] or https://host[:port]; default kms.REGION.aliyuncs.com ($NRI_CSIG_KMS_ENDPOINT)")
	f.StringVar(&o.KMSCA, "kms-ca", "", "PEM CA bundle trusted for the KMS endpoint, e.g. the KMS instance CA of a dedicated gateway ($NRI_CSIG_KMS_CA)")
	f.DurationVar(&o.KMSTimeout, "kms-timeout", alikms.DefaultReadTimeout, "how long to wait for each KMS answer ($NRI_CSIG_KMS_TIMEOUT)")
	f.DurationVar(&o.KMSConnectTimeout, "kms-connect-timeout", alikms.DefaultConnectTimeout, "how long to wait for a connection to KMS ($NRI_CSIG_KMS_CONNECT_TIMEOUT)")
	f.BoolVar(&o.KMSDedicated, "kms-dedicated-gateway", false, "--kms-endpoint is a dedicated gateway (GetPublicKey and AsymmetricSign only): needs ?version= in --key ($NRI_CSIG_KMS_DEDICATED_GATEWAY)")
	_ = cmd.MarkFlagFilename("kms-ca", "pem", "crt")
	_ = cmd.RegisterFlagCompletionFunc("signature-algorithm", cobra.FixedCompletions(
		[]string{string(keys.RSAPKCS1SHA256), string(keys.RSAPSSSHA256), string(keys.ECDSASHA256)}, cobra.ShellCompDirectiveNoFileComp))
}

// fromEnv fills flags the user did not set from their environment variables.
func (o *keyOptions) fromEnv() error {
	for name, env := range keyFlagEnv {
		v, ok := os.LookupEnv(env)
		if !ok || v == "" || o.cmd == nil || o.cmd.Flags().Changed(name) {
			continue
		}
		if err := o.cmd.Flags().Set(name, v); err != nil {
			return fmt.Errorf("%s=%q: %w", env, v, err)
		}
	}
	return nil
}

// Options returns the keyref.Options the flags describe.
func (o *keyOptions) Options() (keyref.Options, error) {
	if err := o.fromEnv(); err != nil {
		return keyref.Options{}, err
	}
	if o.Key == "" {
		return keyref.Options{}, fmt.Errorf("no key: pass --key PATH or --key alikms://REGION/KEY-ID (or set NRI_CSIG_KEY)")
	}
	if o.KMSTimeout <= 0 || o.KMSConnectTimeout <= 0 {
		return keyref.Options{}, fmt.Errorf("--kms-timeout and --kms-connect-timeout must be positive")
	}
	return keyref.Options{
		Algorithm: keys.Algorithm(o.Algorithm),
		KMS: alikms.Config{
			Endpoint:       o.KMSEndpoint,
			CAFile:         o.KMSCA,
			ReadTimeout:    o.KMSTimeout,
			ConnectTimeout: o.KMSConnectTimeout,
			Dedicated:      o.KMSDedicated,
		},
	}, nil
}

// Open opens the signing key.
func (o *keyOptions) Open(ctx context.Context) (keys.Signer, error) {
	opts, err := o.Options()
	if err != nil {
		return nil, err
	}
	return keyref.Open(ctx, o.Key, opts)
}

// OpenPublic opens the verification key (a public PEM file is enough).
func (o *keyOptions) OpenPublic(ctx context.Context) (crypto.PublicKey, error) {
	opts, err := o.Options()
	if err != nil {
		return nil, err
	}
	return keyref.OpenPublic(ctx, o.Key, opts)
}
