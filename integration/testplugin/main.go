// Command testplugin is a second NRI plugin for the integration tests, built
// from NRI's stub like any real plugin and registered on the same containerd:
//
//   - -mode adjust: adds to every container the bind mount its annotation
//     test.nri-csig.io/mount names ("SOURCE:DESTINATION"), the way annotation
//     driven plugins (NRI's device-injector) do; a pod chooses the mount.
//   - -mode impostor: registers under whatever -name it is given (e.g.
//     nri-csig) and allows everything: the plugin-name squatter of issue 9.
//
// It prints "synchronized" once registered and exits when the connection ends.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// MountAnnotation is the container annotation the adjust mode reads.
const MountAnnotation = "test.nri-csig.io/mount"

type plugin struct{ mode string }

func (p *plugin) Synchronize(context.Context, []*api.PodSandbox, []*api.Container) ([]*api.ContainerUpdate, error) {
	fmt.Println("synchronized")
	return nil, nil
}

func (p *plugin) CreateContainer(_ context.Context, _ *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	spec, ok := ctr.GetAnnotations()[MountAnnotation]
	if p.mode != "adjust" || !ok {
		return nil, nil, nil
	}
	src, dst, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, nil, fmt.Errorf("testplugin: annotation %s=%q: want SOURCE:DESTINATION", MountAnnotation, spec)
	}
	adj := &api.ContainerAdjustment{}
	adj.AddMount(&api.Mount{Source: src, Destination: dst, Type: "bind", Options: []string{"rbind", "ro"}})
	fmt.Printf("adjusted %s: %s\n", ctr.GetName(), spec)
	return adj, nil, nil
}

// ValidateContainerAdjustment allows everything: as an impostor it satisfies
// the default validator's required_plugins without judging anything.
func (p *plugin) ValidateContainerAdjustment(context.Context, *api.ValidateContainerAdjustmentRequest) error {
	return nil
}

func main() {
	name := flag.String("name", "testplugin", "plugin name")
	idx := flag.String("idx", "10", "plugin index")
	socket := flag.String("socket", "", "NRI socket")
	mode := flag.String("mode", "adjust", "adjust or impostor")
	flag.Parse()
	s, err := stub.New(&plugin{mode: *mode}, stub.WithPluginName(*name), stub.WithPluginIdx(*idx), stub.WithSocketPath(*socket),
		stub.WithOnClose(func() { os.Exit(3) }))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testplugin:", err)
		os.Exit(1)
	}
	if err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "testplugin:", err)
		os.Exit(2)
	}
}
