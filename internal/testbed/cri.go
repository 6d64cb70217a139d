package testbed

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

var seq atomic.Int64

// Pod is a host-network pod sandbox created through the CRI.
type Pod struct {
	ID        string
	Name      string
	Namespace string
	spec      string // the pod config file crictl needs again at create
	c         *Containerd
}

// RunPod starts a host-network pod (no CNI needed) in namespace.
func (c *Containerd) RunPod(name, namespace string) (*Pod, error) {
	n := seq.Add(1)
	logDir := filepath.Join(c.Dir, "pods", fmt.Sprintf("%s-%d", name, n))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	spec := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": namespace, "uid": fmt.Sprintf("%s-uid-%d", name, n), "attempt": 0},
		"log_directory": logDir,
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
	}
	path := filepath.Join(logDir, "pod.json")
	if err := writeJSON(path, spec); err != nil {
		return nil, err
	}
	id, err := c.Crictl("runp", path)
	if err != nil {
		return nil, err
	}
	return &Pod{ID: id, Name: name, Namespace: namespace, spec: path, c: c}, nil
}

// ContainerSpec is the part of a CRI container config the tests vary.
type ContainerSpec struct {
	Name  string
	Image string // reference by tag, by digest, or image ID
	// UserSpecifiedImage is what the CRI caller claims the image is; it ends up
	// in the io.kubernetes.cri.image-name annotation.
	UserSpecifiedImage string
	Command            []string
}

// Create creates (not starts) a container; the error holds crictl's stderr,
// where the runtime's refusal is printed.
func (p *Pod) Create(s ContainerSpec) (string, error) {
	if len(s.Command) == 0 {
		s.Command = []string{"/bin/sh", "-c", "echo hello from " + s.Name + "; sleep 3600"}
	}
	image := map[string]any{"image": s.Image}
	if s.UserSpecifiedImage != "" {
		image["user_specified_image"] = s.UserSpecifiedImage
	}
	spec := map[string]any{
		"metadata": map[string]any{"name": s.Name},
		"image":    image,
		"command":  s.Command,
		"log_path": s.Name + ".log",
		"linux":    map[string]any{},
	}
	path := filepath.Join(filepath.Dir(p.spec), fmt.Sprintf("ctr-%s-%d.json", s.Name, seq.Add(1)))
	if err := writeJSON(path, spec); err != nil {
		return "", err
	}
	return p.c.Crictl("create", p.ID, path, p.spec)
}

// Run creates and starts a container.
func (p *Pod) Run(s ContainerSpec) (string, error) {
	id, err := p.Create(s)
	if err != nil {
		return "", err
	}
	if _, err := p.c.Crictl("start", id); err != nil {
		return id, err
	}
	return id, nil
}

// ContainerNames lists the names of the pod's containers in any state.
func (p *Pod) ContainerNames() ([]string, error) {
	out, err := p.c.Crictl("ps", "-a", "--pod", p.ID, "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Containers []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"containers"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	var names []string
	for _, c := range list.Containers {
		names = append(names, c.Metadata.Name)
	}
	return names, nil
}

// Remove stops and removes the pod and its containers.
func (p *Pod) Remove() error {
	_, err := p.c.Crictl("rmp", "--force", p.ID)
	return err
}

// Logs returns a container's output.
func (c *Containerd) Logs(id string) (string, error) { return c.Crictl("logs", id) }

// Pull pulls ref through the CRI and returns its image ID (config digest).
func (c *Containerd) Pull(ref string) (string, error) {
	out, err := c.Crictl("pull", ref)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(out, "Image is up to date for "), nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
