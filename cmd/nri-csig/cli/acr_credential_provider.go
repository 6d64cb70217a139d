//go:build !nodeonly

package cli

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/acrcred"
)

func newACRCredentialProviderCmd() *cobra.Command {
	var o acrcred.Options
	cmd := &cobra.Command{
		Use:   "acr-credential-provider",
		Short: "Kubelet credential provider for Alibaba Cloud ACR Enterprise Edition (run by kubelet and by nri-csig)",
		Long: `acr-credential-provider is a kubelet credential provider plugin: it reads a
CredentialProviderRequest (credentialprovider.kubelet.k8s.io/v1) on stdin and writes a
CredentialProviderResponse on stdout, with a temporary login to an ACR Enterprise
Edition instance from the ACR API's GetAuthorizationToken.

The call is signed with the credentials of the Alibaba Cloud default chain: on an ACK or
ECS node, the node's RAM role (from the instance metadata service), so the node keeps no
static secret. The role needs cr:GetAuthorizationToken on the instance. For tests or
other hosts, ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET(/ALIBABA_CLOUD_SECURITY_TOKEN) or
ALIBABA_CLOUD_CREDENTIALS_URI are read too.

The answer is cached per registry (cacheKeyType Registry) for the token's remaining life
less 5 minutes. Nothing secret is printed on stderr.

Configure it in the CredentialProviderConfig that kubelet reads
(--image-credential-provider-config) and that nri-csig reads through its node config
(registries.credentialProviders): link nri-csig-cli (the smallest binary with this
subcommand) into the plugin directory under the provider's name, and pass this
subcommand as the first argument:

  # ln -s /usr/bin/nri-csig-cli /usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec/nri-csig
  apiVersion: kubelet.config.k8s.io/v1
  kind: CredentialProviderConfig
  providers:
    - name: nri-csig
      apiVersion: credentialprovider.kubelet.k8s.io/v1
      matchImages: ["demo-registry.cn-hangzhou.cr.aliyuncs.com", "demo-registry-vpc.cn-hangzhou.cr.aliyuncs.com"]
      defaultCacheDuration: 30m
      args: [acr-credential-provider, --instance-id, cri-xxxxxxxxxxxx]

The region is read from the registry host (<instance>-registry[-vpc].<region>.cr.aliyuncs.com)
unless --region is given; the API endpoint is cr.<region>.aliyuncs.com unless --endpoint
is given (e.g. cr-vpc.<region>.aliyuncs.com from a VPC without internet access).`,
		Example: `  echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"demo-registry.cn-hangzhou.cr.aliyuncs.com/team/app"}' \
    | nri-csig acr-credential-provider --instance-id cri-xxxxxxxxxxxx`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.InstanceID == "" {
				o.InstanceID = os.Getenv("ACR_INSTANCE_ID")
			}
			// Finish before nri-csig (20s) or kubelet (1 minute) kills the plugin.
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			return acrcred.Serve(ctx, cmd.InOrStdin(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.InstanceID, "instance-id", "", "ACR Enterprise Edition instance ID, cri-... (default $ACR_INSTANCE_ID)")
	f.StringVar(&o.Region, "region", "", "the instance's region, e.g. cn-hangzhou (default: read from the registry host)")
	f.StringVar(&o.Endpoint, "endpoint", "", "ACR API endpoint, host[:port] or https://host[:port] (default cr.<region>.aliyuncs.com)")
	f.DurationVar(&o.Timeout, "timeout", acrcred.DefaultTimeout, "bound of the API call")
	return cmd
}
