//go:build integration

package credentials

import (
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// A kubelet credential provider plugin supplies the login of a private
// registry: the signed image is admitted, the unsigned one refused for its
// missing signature, and the plugin's answer (cacheKeyType Registry,
// cacheDuration 1h) serves later repositories of that registry without
// running the plugin again. The password never reaches the daemon's log.
func TestCredentialProviderPlugin(t *testing.T) {
	signed := newImage(t, private, "team/app:1", "private-signed", true)
	unsigned := newImage(t, private, "team/unsigned:1", "private-unsigned", false)
	pod := env.Containerd.NewPod(t, namespace)
	mustRun(t, pod, "signed", signed)
	mustRefuseUnsigned(t, pod, "unsigned", unsigned)

	runs := runsOfPlugin(t)
	if len(runs) == 0 {
		t.Fatal("the credential provider plugin never ran; the signature cannot have been read with its login")
	}
	for _, image := range runs {
		if !strings.HasPrefix(image, private.Host+"/") {
			t.Errorf("plugin asked for %q; want only images of %s (its matchImages)", image, private.Host)
		}
	}

	// Another repository of the same registry, within the cache duration.
	other := newImage(t, private, "other/app:1", "private-other", true)
	mustRun(t, pod, "other", other)
	if after := runsOfPlugin(t); len(after) != len(runs) {
		t.Errorf("plugin ran %d times after a second repository (was %d); want its Registry answer cached for 1h", len(after), len(runs))
	}
	if log := daemon.Log(); strings.Contains(log, pluginPassword) {
		t.Error("the plugin's password appears in the daemon's log")
	}
}

// "nri-csig acr-credential-provider", configured as a provider, gets a
// temporary login from the ACR fake's GetAuthorizationToken, signed with
// RAM-role-style temporary credentials (fetched from the fake's credentials
// endpoint); the daemon reads the signatures with that login.
func TestACRCredentialProvider(t *testing.T) {
	readsBefore := acrReads.Load() // the daemon reads signatures as soon as containerd has the image
	signed := newImage(t, acr, "acr/app:1", "acr-signed", true)
	unsigned := newImage(t, acr, "acr/unsigned:1", "acr-unsigned", false)
	pod := env.Containerd.NewPod(t, namespace)
	mustRun(t, pod, "signed", signed)
	mustRefuseUnsigned(t, pod, "unsigned", unsigned)
	if n := acrAPI.TokenCalls(); n < 1 {
		t.Errorf("the ACR fake issued %d tokens; want the provider to have asked", n)
	}
	if n := acrAPI.CredentialCalls(); n < 1 {
		t.Errorf("the role's credentials were fetched %d times; want the provider to have signed with them", n)
	}
	if acrReads.Load() <= readsBefore {
		t.Error("the ACR registry served no request with an issued login; the daemon cannot have read the signatures with it")
	}
	if log := daemon.Log(); strings.Contains(log, "acr-token-") {
		t.Error("an ACR token appears in the daemon's log")
	}
}

// A plugin that fails is named in the refusal of the image it was asked
// for: the signatures could not be read, which is never "not signed".
func TestFailingPluginIsNamed(t *testing.T) {
	img := newImage(t, broken, "team/app:1", "broken-signed", true)
	pod := env.Containerd.NewPod(t, namespace)
	_, err := pod.Create(testbed.ContainerSpec{Name: "signed", Image: img.Ref})
	if err == nil {
		t.Fatal("a signed image whose signatures cannot be read was admitted")
	}
	msg := strings.ReplaceAll(err.Error(), `\"`, `"`)
	for _, want := range []string{"nri-csig: refused container", "kubelet credential provider broken-cred", "credential provider plugin failed", "exit status 2", "token service unreachable"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal does not mention %q:\n%s", want, msg)
		}
	}
	t.Logf("refusal: %s", msg[strings.Index(msg, "nri-csig: refused"):])
	if strings.Contains(msg, "no signatures found") {
		t.Errorf("refusal says the image is not signed; want the credential failure:\n%s", msg)
	}
}
