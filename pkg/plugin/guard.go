package plugin

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/guard"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// Integrity is the node-integrity guard (pkg/guard) and what to do with the
// mounts and devices other NRI plugins add to a container nri-csig allows.
type Integrity struct {
	Guard *guard.Guard
	// RefuseMounts / RefuseDevices refuse a container another plugin added
	// mounts / devices to; otherwise the additions are recorded (audit event
	// "adjust") and only those the guard refuses are refused.
	RefuseMounts  bool
	RefuseDevices bool
}

// SetIntegrity replaces the guard by g (nil: none).
func (p *Plugin) SetIntegrity(g *Integrity) {
	p.setIntegritySource(func() *Integrity { return g })
}

func (p *Plugin) setIntegritySource(f func() *Integrity) { p.integrity.Store(&f) }

// currentIntegrity is the guard in force, or nil.
func (p *Plugin) currentIntegrity() *Integrity {
	if f := p.integrity.Load(); f != nil && *f != nil {
		return (*f)()
	}
	return nil
}

// checkIntegrity runs the guard over the container as the pod spec makes it.
// It fills in the subject's image for the refusal message and the record.
func (p *Plugin) checkIntegrity(pod *api.PodSandbox, ctr *api.Container, s *policy.Subject) (policy.Verdict, bool) {
	g := p.currentIntegrity()
	if g == nil || g.Guard == nil {
		return policy.Verdict{}, false
	}
	v, refused := g.Guard.Check(guardContainer(pod, ctr, nil, nil))
	if refused {
		if n := ctr.GetImage().GetName(); n != "" {
			s.ImageName = n
		}
		s.ConfigDigest = ctr.GetImage().GetConfigDigest()
	}
	return v, refused
}

// checkAdjustment judges what other NRI plugins changed on a container
// nri-csig allows, or refused for node integrity (req.Adjust, with req.Owners
// naming who changed what).
// nri-csig itself only adds annotations, so every mount, device, hook,
// namespace, environment variable or argument in the adjustment is another
// plugin's. The changes are recorded; the guard judges the container again
// with the added mounts, devices and namespaces (a plugin that bind-mounts the
// NRI socket is refused like a pod that does); and the node config may refuse
// any added mount or device (verdict kind policy.RuleAdjustment).
func (p *Plugin) checkAdjustment(req *api.ValidateContainerAdjustmentRequest, s policy.Subject, v policy.Verdict) policy.Verdict {
	adj := req.GetAdjust()
	changes := adjustmentChanges(req)
	if len(changes) == 0 {
		return v
	}
	ctr := req.GetContainer()
	g := p.currentIntegrity()
	if g == nil {
		g = &Integrity{}
	}
	// The guard again, now knowing which plugin added what. (At
	// CreateContainer nri-csig already saw earlier plugins' additions, without
	// their authors, and may have refused for them.)
	if g.Guard != nil {
		if gv, refused := g.Guard.Check(guardContainer(req.GetPod(), ctr, adj, req.GetOwners())); refused {
			return gv
		}
	}
	if !v.Allowed() {
		return v
	}
	p.opts.Audit.Write(audit.Record{
		Event: "adjust", Decision: "adjusted", Rule: string(policy.RuleAdjustment),
		Namespace: s.Namespace, Pod: s.Pod, Container: s.Container, ContainerID: ctr.GetId(),
		Image: s.ImageName, Digest: v.Digest, ConfigDigest: s.ConfigDigest,
		Reason: "other NRI plugins changed the container nri-csig allowed: " + strings.Join(changes, "; "),
	})
	var refused []string
	owner := func(field api.Field, key string) string {
		if o, ok := req.GetOwners().GetOwners()[ctr.GetId()].GetCompound()[field.Key()].GetOwners()[key]; ok {
			return o
		}
		return "an unknown plugin"
	}
	if g.RefuseMounts {
		for _, m := range adj.GetMounts() {
			if dst, removed := api.IsMarkedForRemoval(m.GetDestination()); !removed {
				refused = append(refused, fmt.Sprintf("plugin %s added the mount %s at %s", owner(api.Field_Mounts, dst), m.GetSource(), dst))
			}
		}
	}
	if g.RefuseDevices {
		for _, d := range adj.GetLinux().GetDevices() {
			if path, removed := api.IsMarkedForRemoval(d.GetPath()); !removed {
				refused = append(refused, fmt.Sprintf("plugin %s added the device %s", owner(api.Field_Devices, path), path))
			}
		}
		for _, d := range adj.GetCDIDevices() {
			refused = append(refused, fmt.Sprintf("plugin %s added the CDI device %s", owner(api.Field_CdiDevices, d.GetName()), d.GetName()))
		}
	}
	if len(refused) == 0 {
		return v
	}
	return policy.Verdict{Decision: policy.Deny, Kind: policy.RuleAdjustment, Digest: v.Digest,
		Reason: "the image is trusted, but " + strings.Join(refused, "; ") +
			", and this node's config refuses mounts and devices other plugins add (guard.otherPlugins); fix or reconfigure that plugin, or set guard.otherPlugins to record"}
}

// adjustmentChanges describes, in words, what other plugins changed.
func adjustmentChanges(req *api.ValidateContainerAdjustmentRequest) []string {
	adj := req.GetAdjust()
	id := req.GetContainer().GetId()
	fo := req.GetOwners().GetOwners()[id]
	compound := func(field api.Field, key string) string {
		if o, ok := fo.GetCompound()[field.Key()].GetOwners()[key]; ok {
			return o
		}
		return "unknown"
	}
	simple := func(field api.Field) string {
		if o, ok := fo.GetSimple()[field.Key()]; ok {
			return o
		}
		return "unknown"
	}
	var out []string
	for _, m := range adj.GetMounts() {
		if dst, removed := api.IsMarkedForRemoval(m.GetDestination()); removed {
			out = append(out, fmt.Sprintf("%s removed the mount at %s", compound(api.Field_Mounts, dst), dst))
		} else {
			out = append(out, fmt.Sprintf("%s added the mount %s at %s (type %s, options %s)", compound(api.Field_Mounts, dst), m.GetSource(), dst, m.GetType(), strings.Join(m.GetOptions(), ",")))
		}
	}
	for _, d := range adj.GetLinux().GetDevices() {
		path, removed := api.IsMarkedForRemoval(d.GetPath())
		verb := "added"
		if removed {
			verb = "removed"
		}
		out = append(out, fmt.Sprintf("%s %s the device %s (%s %d:%d)", compound(api.Field_Devices, path), verb, path, d.GetType(), d.GetMajor(), d.GetMinor()))
	}
	for _, d := range adj.GetCDIDevices() {
		out = append(out, fmt.Sprintf("%s added the CDI device %s", compound(api.Field_CdiDevices, d.GetName()), d.GetName()))
	}
	for _, ns := range adj.GetLinux().GetNamespaces() {
		typ, _ := api.IsMarkedForRemoval(ns.GetType())
		out = append(out, fmt.Sprintf("%s changed the %s namespace (%q)", compound(api.Field_Namespace, typ), typ, ns.GetPath()))
	}
	if h := adj.GetHooks(); len(h.GetPrestart())+len(h.GetCreateRuntime())+len(h.GetCreateContainer())+len(h.GetStartContainer())+len(h.GetPoststart())+len(h.GetPoststop()) > 0 {
		out = append(out, fmt.Sprintf("%s added OCI hooks (they run on the host)", simple(api.Field_OciHooks)))
	}
	for _, e := range adj.GetEnv() {
		out = append(out, fmt.Sprintf("%s set the environment variable %s", compound(api.Field_Env, api.ClearRemovalMarker(e.GetKey())), api.ClearRemovalMarker(e.GetKey())))
	}
	if len(adj.GetArgs()) > 0 {
		out = append(out, fmt.Sprintf("%s replaced the command line", simple(api.Field_Args)))
	}
	if adj.GetLinux().GetSeccompPolicy() != nil {
		out = append(out, fmt.Sprintf("%s replaced the seccomp policy", simple(api.Field_SeccompPolicy)))
	}
	return out
}

// guardContainer is what the guard judges: the container as the pod spec
// makes it, plus what other plugins added (adj may be nil).
func guardContainer(pod *api.PodSandbox, ctr *api.Container, adj *api.ContainerAdjustment, owners *api.OwningPlugins) guard.Container {
	c := guard.Container{
		ID: ctr.GetId(), PodID: ctr.GetPodSandboxId(), Namespace: pod.GetNamespace(),
		ConfigDigest: ctr.GetImage().GetConfigDigest(), ImageDigest: ctr.GetImage().GetDigest(),
	}
	for _, m := range ctr.GetMounts() {
		c.Mounts = append(c.Mounts, guard.Mount{Source: m.GetSource(), Destination: m.GetDestination(), Type: m.GetType(), Options: m.GetOptions()})
	}
	for _, d := range ctr.GetLinux().GetDevices() {
		c.Devices = append(c.Devices, guard.Device{Path: d.GetPath(), Type: d.GetType(), Major: d.GetMajor(), Minor: d.GetMinor()})
	}
	if l := ctr.GetLinux(); l != nil {
		c.Namespaces = []string{}
		for _, ns := range l.GetNamespaces() {
			c.Namespaces = append(c.Namespaces, ns.GetType())
		}
	}
	if nss := pod.GetLinux().GetNamespaces(); len(nss) > 0 {
		for _, ns := range nss {
			c.PodNamespaces = append(c.PodNamespaces, ns.GetType())
		}
	}
	if adj == nil {
		return c
	}
	fo := owners.GetOwners()[ctr.GetId()] // nil-safe: no owners, "unknown"
	for _, m := range adj.GetMounts() {
		dst, removed := api.IsMarkedForRemoval(m.GetDestination())
		if removed {
			continue // a removal exposes nothing of the host
		}
		o, _ := fo.MountOwner(dst)
		c.Mounts = append(c.Mounts, guard.Mount{Source: m.GetSource(), Destination: dst, Type: m.GetType(), Options: m.GetOptions(), Plugin: orUnknownPlugin(o)})
	}
	for _, d := range adj.GetLinux().GetDevices() {
		path, removed := api.IsMarkedForRemoval(d.GetPath())
		if removed {
			continue
		}
		o, _ := fo.DeviceOwner(path)
		c.Devices = append(c.Devices, guard.Device{Path: path, Type: d.GetType(), Major: d.GetMajor(), Minor: d.GetMinor(), Plugin: orUnknownPlugin(o)})
	}
	for _, ns := range adj.GetLinux().GetNamespaces() {
		typ, removed := api.IsMarkedForRemoval(ns.GetType())
		c.Namespaces = slices.DeleteFunc(c.Namespaces, func(t string) bool { return t == typ })
		if !removed {
			c.Namespaces = append(c.Namespaces, typ)
		}
	}
	return c
}

func orUnknownPlugin(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
