package kritis

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// MaxRunning bounds how many running images one import reads.
const MaxRunning = 100000

// Running is an image that runs today, with the digest it runs by.
type Running struct {
	Image     string // as referenced: repo[:tag] or repo@digest
	Digest    string // sha256:<hex>, the manifest (or index) digest
	Namespace string // empty when the source does not say (crictl)
}

var hex64 = regexp.MustCompile(`^(sha256:)?([a-f0-9]{64})$`)

// ParseRunning reads the images that run today from the output of
// `kubectl get pods -A -o json` (namespaces known) or
// `crictl images --digests --no-trunc` (no namespaces). Lines it cannot use
// are returned as notes, one per line, never silently dropped.
func ParseRunning(data []byte) (imgs []Running, notes []string, err error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return parsePods(t)
	}
	return parseCrictl(data)
}

func parsePods(data []byte) ([]Running, []string, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Status struct {
				ContainerStatuses     []containerStatus `json:"containerStatuses"`
				InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, nil, fmt.Errorf("running digests: not kubectl JSON: %w", err)
	}
	var (
		out   []Running
		notes []string
	)
	for _, pod := range list.Items {
		for _, cs := range append(pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses...) {
			// imageID is "repo@sha256:..." (containerd) or "docker-pullable://repo@sha256:...".
			_, d, ok := strings.Cut(cs.ImageID, "@")
			if !ok || !hex64.MatchString(d) {
				notes = append(notes, fmt.Sprintf("pod %s/%s container %s: imageID %q names no digest", pod.Metadata.Namespace, pod.Metadata.Name, cs.Name, cs.ImageID))
				continue
			}
			if len(out) >= MaxRunning {
				return nil, nil, fmt.Errorf("running digests: more than %d images", MaxRunning)
			}
			out = append(out, Running{Image: cs.Image, Digest: d, Namespace: pod.Metadata.Namespace})
		}
	}
	return out, notes, nil
}

type containerStatus struct {
	Name    string `json:"name"`
	Image   string `json:"image"`
	ImageID string `json:"imageID"`
}

func parseCrictl(data []byte) ([]Running, []string, error) {
	var (
		out   []Running
		notes []string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || (n == 1 && f[0] == "IMAGE") {
			continue
		}
		if len(f) < 3 {
			notes = append(notes, fmt.Sprintf("line %d: want IMAGE TAG DIGEST ... (crictl images --digests --no-trunc): %q", n, sc.Text()))
			continue
		}
		repo, tag, d := f[0], f[1], f[2]
		m := hex64.FindStringSubmatch(d)
		if m == nil {
			notes = append(notes, fmt.Sprintf("line %d: %s: digest %q is not a full sha256 digest: run crictl with --no-trunc", n, repo, d))
			continue
		}
		img := repo
		if tag != "<none>" {
			img += ":" + tag
		}
		if len(out) >= MaxRunning {
			return nil, nil, fmt.Errorf("running digests: more than %d images", MaxRunning)
		}
		out = append(out, Running{Image: img, Digest: "sha256:" + m[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("running digests: %w", err)
	}
	return out, notes, nil
}

// Match reports whether image (repo[:tag][@digest]) matches a kritis
// namePattern: the pattern is exact, or has '*' wildcards; a trailing '*'
// matches anything but '/', an inner one letters, digits, '_' and '-'.
func Match(pattern, image string) bool {
	re, err := patternRE(pattern)
	if err != nil {
		return false
	}
	name, _, _ := strings.Cut(image, "@")
	return re.MatchString(image) || re.MatchString(name)
}

func patternRE(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	parts := strings.Split(pattern, "*")
	for i, p := range parts {
		b.WriteString(regexp.QuoteMeta(p))
		switch {
		case i == len(parts)-1:
		case i == len(parts)-2 && parts[len(parts)-1] == "":
			b.WriteString(`[^/]*`)
		default:
			b.WriteString(`[A-Za-z0-9_-]*`)
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
