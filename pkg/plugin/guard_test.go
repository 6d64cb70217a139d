package plugin

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/guard"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

type allowAll struct{}

func (allowAll) Decide(context.Context, policy.Subject) policy.Verdict {
	return policy.Verdict{Decision: policy.Allow, Kind: policy.RuleAllowlist, Digest: trustedDigest}
}

type recorder struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (r *recorder) Write(rec audit.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
}

func (r *recorder) find(event string) []audit.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.Record
	for _, rec := range r.recs {
		if rec.Event == event {
			out = append(out, rec)
		}
	}
	return out
}

func guardedPlugin(in Integrity) (*Plugin, *recorder) {
	rec := &recorder{}
	in.Guard = guard.New(guard.Config{}, nil)
	p := New(allowAll{}, fakeImages{digests: []string{trustedDigest}}, slog.New(slog.DiscardHandler),
		Options{DecisionTimeout: time.Second, Audit: rec, Integrity: func() *Integrity { return &in }})
	return p, rec
}

func namespaces(types ...string) []*api.LinuxNamespace {
	var out []*api.LinuxNamespace
	for _, t := range types {
		out = append(out, &api.LinuxNamespace{Type: t})
	}
	return out
}

// adjusted is a validation request for a container one other plugin changed.
func adjusted(mounts []*api.Mount, devices []*api.LinuxDevice) *api.ValidateContainerAdjustmentRequest {
	req := request("prod", &api.Image{Name: "reg/app:1", ConfigDigest: configDigest, Digest: trustedDigest}, nil)
	req.Container.Id = "ctr1"
	req.Container.Linux = &api.LinuxContainer{Namespaces: namespaces("pid", "mount", "ipc", "uts", "network")}
	owners := &api.OwningPlugins{Owners: map[string]*api.FieldOwners{}}
	req.Adjust = &api.ContainerAdjustment{}
	for _, m := range mounts {
		req.Adjust.AddMount(m)
		owners.ClaimMount("ctr1", m.Destination, "10-injector")
	}
	if len(devices) > 0 {
		req.Adjust.Linux = &api.LinuxContainerAdjustment{Devices: devices}
		for _, d := range devices {
			owners.ClaimDevice("ctr1", d.Path, "20-devices")
		}
	}
	req.Owners = owners
	return req
}

func TestOtherPluginsAdjustments(t *testing.T) {
	harmless := []*api.Mount{{Source: "/srv/data", Destination: "/extra", Type: "bind", Options: []string{"rbind"}}}
	for name, tc := range map[string]struct {
		in         Integrity
		req        *api.ValidateContainerAdjustmentRequest
		refused    string // "" = allowed; else part of the refusal
		kind       policy.RuleKind
		adjustment string // part of the "adjust" record; "" = none
	}{
		"nothing changed": {req: adjusted(nil, nil)},
		"harmless mount recorded": {req: adjusted(harmless, nil),
			adjustment: "10-injector added the mount /srv/data at /extra (type bind, options rbind)"},
		"mount of the NRI folder refused": {req: adjusted([]*api.Mount{{Source: "/var/run/nri", Destination: "/n", Type: "bind"}}, nil),
			refused: "mounted at /n (added by NRI plugin 10-injector) reaches the NRI socket's directory /run/nri", kind: policy.RuleNodeIntegrity},
		"block device refused": {req: adjusted(nil, []*api.LinuxDevice{{Path: "/dev/sda", Type: "b", Major: 8}}),
			refused: "host device /dev/sda (a block device) (added by NRI plugin 20-devices)", kind: policy.RuleNodeIntegrity},
		"harmless device recorded": {req: adjusted(nil, []*api.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}),
			adjustment: "20-devices added the device /dev/fuse (c 10:229)"},
		"mounts refused by config": {in: Integrity{RefuseMounts: true}, req: adjusted(harmless, nil),
			refused: "plugin 10-injector added the mount /srv/data at /extra", kind: policy.RuleAdjustment, adjustment: "10-injector added the mount"},
		"devices refused by config": {in: Integrity{RefuseDevices: true}, req: adjusted(nil, []*api.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}),
			refused: "plugin 20-devices added the device /dev/fuse", kind: policy.RuleAdjustment, adjustment: "20-devices added the device /dev/fuse"},
		"devices refused, mounts only recorded": {in: Integrity{RefuseDevices: true}, req: adjusted(harmless, nil),
			adjustment: "10-injector added the mount"},
	} {
		t.Run(name, func(t *testing.T) {
			p, rec := guardedPlugin(tc.in)
			err := p.ValidateContainerAdjustment(context.Background(), tc.req)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("got %v, want a refusal containing %q", err, tc.refused)
				}
				creates := rec.find("create")
				if len(creates) != 1 || creates[0].Decision != "deny" || creates[0].Rule != string(tc.kind) {
					t.Errorf("create records = %+v; want one deny by %s", creates, tc.kind)
				}
			}
			adj := rec.find("adjust")
			switch {
			case tc.adjustment == "" && len(adj) != 0:
				t.Errorf("adjust records %+v; want none", adj)
			case tc.adjustment != "" && (len(adj) != 1 || !strings.Contains(adj[0].Reason, tc.adjustment) || adj[0].Decision != "adjusted" || adj[0].ContainerID != "ctr1"):
				t.Errorf("adjust records %+v; want one naming %q", adj, tc.adjustment)
			}
		})
	}
}

// The guard also runs at CreateContainer (before the image is judged) and on
// the pristine container: a pod's own hostPath of the containerd socket.
func TestGuardBeforeTheDecider(t *testing.T) {
	p, rec := guardedPlugin(Integrity{})
	req := adjusted(nil, nil)
	req.Container.Mounts = []*api.Mount{{Source: "/run/containerd/containerd.sock", Destination: "/c.sock", Type: "bind", Options: []string{"rbind", "ro"}}}
	if _, _, err := p.CreateContainer(context.Background(), req.Pod, req.Container); err != nil {
		t.Fatal(err)
	}
	err := p.ValidateContainerAdjustment(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "node integrity: the host path /run/containerd/containerd.sock mounted at /c.sock reaches the containerd socket") {
		t.Fatalf("got %v; want the guard's refusal although the decider allows everything", err)
	}
	if r := rec.find("create"); len(r) != 1 || r[0].Rule != "node-integrity" {
		t.Errorf("create records %+v", r)
	}
	// Host PID: the pod sandbox has no pid namespace.
	req = adjusted(nil, nil)
	req.Pod.Linux = &api.LinuxPodSandbox{Namespaces: namespaces("mount", "ipc", "uts", "network")}
	if err := p.ValidateContainerAdjustment(context.Background(), req); err == nil || !strings.Contains(err.Error(), "host's PID namespace") {
		t.Errorf("host PID pod: got %v", err)
	}
	// Without a guard (SetIntegrity(nil)), the decider alone decides.
	p.SetIntegrity(nil)
	if err := p.ValidateContainerAdjustment(context.Background(), req); err != nil {
		t.Errorf("without a guard: %v", err)
	}
}
