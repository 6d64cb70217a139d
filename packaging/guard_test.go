package packaging

import (
	"slices"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/guard"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

// The DaemonSet mounts /etc/nri-csig from the host, which the node-integrity
// guard refuses unless the node config it ships allows exactly that: its
// namespace, its image digest, that path. The same mount by another image or
// in another namespace stays refused.
func TestKubernetesManifestPassesTheGuard(t *testing.T) {
	docs := manifest(t)
	ds := docs["DaemonSet/nri-csig-sync"]
	ns := get(t, ds, "metadata", "namespace").(string)
	pod := get(t, ds, "spec", "template", "spec")
	digest := digestRE.FindStringSubmatch(get(t, pod, "containers", 0, "image").(string))[1]
	c, err := nodeconfig.Parse("ConfigMap nri-csig-node-config", []byte(get(t, docs["ConfigMap/nri-csig-node-config"], "data", "config.yaml").(string)))
	if err != nil {
		t.Fatal(err)
	}
	var mounts []guard.Mount
	for _, v := range get(t, pod, "volumes").([]any) {
		vol := v.(map[string]any)
		if hp, ok := vol["hostPath"]; ok {
			mounts = append(mounts, guard.Mount{Source: get(t, hp, "path").(string), Destination: "/host" + get(t, hp, "path").(string), Type: "bind", Options: []string{"rbind"}})
		}
	}
	if len(mounts) == 0 {
		t.Fatalf("the DaemonSet has no hostPath volume; this test expects /etc/nri-csig")
	}
	g := guard.New(c.Guard.Paths, nil)
	ctr := func(namespace, digest string) guard.Container {
		return guard.Container{Namespace: namespace, ImageDigest: digest, Mounts: mounts,
			Namespaces: []string{"pid", "mount", "ipc", "uts", "network"}, PodNamespaces: []string{"pid", "mount", "ipc", "uts", "network"}}
	}
	if v, refused := g.Check(ctr(ns, digest)); refused {
		t.Errorf("the node config the manifest ships refuses its own DaemonSet: %s", v.Reason)
	}
	for _, other := range []guard.Container{ctr("default", digest), ctr(ns, "sha256:"+strings.Repeat("1", 64))} {
		if _, refused := g.Check(other); !refused {
			t.Errorf("the guard lets %s/%s mount /etc/nri-csig; only the DaemonSet may", other.Namespace, other.ImageDigest)
		}
	}
	for _, a := range c.Guard.Paths.Allow {
		if a.Privileged || a.HostPID || !slices.Equal(a.Paths, []string{"/etc/nri-csig"}) {
			t.Errorf("guard.allow entry %+v allows more than the sync pod needs", a)
		}
	}
}
