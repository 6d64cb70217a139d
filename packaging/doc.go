// Package packaging holds no code: it is the home of the files that ship
// nri-csig to nodes (nfpm recipe, containerd drop-ins, pre-installed plugin
// wrapper, example node config, Kubernetes manifests) and of the unit tests
// that keep them consistent with each other and with the code. The systemd
// units are in ../systemd. The integration tests (../integration) build the
// packages and run the drop-ins on a real containerd.
package packaging
