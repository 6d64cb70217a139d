package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// ContainerdOptions shape the containerd under test.
type ContainerdOptions struct {
	// RequiredPlugins are listed in the default validator's required_plugins;
	// empty means the default validator is off.
	RequiredPlugins []string
	// RegistryHost (127.0.0.1:port) is pulled from over plain HTTP.
	RegistryHost string
	// SandboxImage is the pause image reference (it must be pulled before the
	// first pod, see PullSandbox).
	SandboxImage string
	// RequestTimeout is NRI's plugin_request_timeout (default 2s).
	RequestTimeout time.Duration
	// Imports are drop-in config files (or globs) containerd merges over the
	// main config, e.g. packaging/containerd/50-nri-csig.toml.
	Imports []string
	// ParentDir is where containerd's directory is made (default: the temp
	// dir). The scale benchmark uses tmpfs: importing 10,000 images is
	// otherwise 20,000 content fsyncs.
	ParentDir string
}

// Containerd is a private containerd: its root, state, sockets and logs are
// under Dir, so it never touches the host's containerd.
type Containerd struct {
	Tools     *Tools
	Dir       string
	Socket    string // gRPC
	NRISocket string
	PluginDir string // NRI plugin_path: pre-installed plugins
	LogPath   string
	opts      ContainerdOptions
	cmd       *exec.Cmd
	exited    chan struct{}
}

var configTemplate = template.Must(template.New("config").Parse(`version = 3
root = '{{.Dir}}/root'
state = '{{.Dir}}/state'
temp = '{{.Dir}}/tmp'
imports = [{{.Imports}}]

[grpc]
  address = '{{.Socket}}'
[ttrpc]
  address = '{{.Socket}}.ttrpc'
[debug]
  address = '{{.Dir}}/state/debug.sock'
  level = 'info'
[metrics]
  address = ''

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '{{.Dir}}/certs.d'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{{.SandboxImage}}'
  [plugins.'io.containerd.cri.v1.runtime']
    # Machines without CAP_SYS_RESOURCE refuse the -998 oom_score_adj the CRI
    # gives sandboxes (runc: "can't get final child's PID from pipe: EOF").
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{{.Runc}}'
          Root = '{{.Dir}}/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{{.Dir}}/cni/bin']
      conf_dir = '{{.Dir}}/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
  [plugins.'io.containerd.internal.v1.opt']
    path = '{{.Dir}}/opt'
  [plugins.'io.containerd.nri.v1.nri']
    disable = false
    socket_path = '{{.NRISocket}}'
    plugin_path = '{{.PluginDir}}'
    plugin_config_path = '{{.Dir}}/nri/conf.d'
    plugin_registration_timeout = '5s'
    plugin_request_timeout = '{{.RequestTimeout}}'
    disable_connections = false
    [plugins.'io.containerd.nri.v1.nri'.default_validator]
      enable = {{.ValidatorOn}}
      required_plugins = [{{.Required}}]
`))

// StartContainerd writes the config and starts containerd in a new temp dir.
func StartContainerd(t *Tools, opts ContainerdOptions) (*Containerd, error) {
	dir, err := os.MkdirTemp(opts.ParentDir, "nri-csig-ctrd-")
	if err != nil {
		return nil, err
	}
	c := &Containerd{
		Tools:     t,
		Dir:       dir,
		Socket:    filepath.Join(dir, "state", "containerd.sock"),
		NRISocket: filepath.Join(dir, "state", "nri.sock"),
		PluginDir: filepath.Join(dir, "nri", "plugins"),
		LogPath:   filepath.Join(dir, "containerd.log"),
		opts:      opts,
	}
	if opts.RequestTimeout == 0 {
		c.opts.RequestTimeout = 2 * time.Second
	}
	for _, d := range []string{"state", "nri/plugins", "nri/conf.d", "cni/net.d", "cni/bin", "pods"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := c.writeConfig(); err != nil {
		return nil, err
	}
	return c, c.Start()
}

func (c *Containerd) writeConfig() error {
	quote := func(list []string) string {
		quoted := make([]string, len(list))
		for i, p := range list {
			quoted[i] = "'" + p + "'"
		}
		return strings.Join(quoted, ", ")
	}
	var buf bytes.Buffer
	err := configTemplate.Execute(&buf, map[string]any{
		"Dir": c.Dir, "Socket": c.Socket, "NRISocket": c.NRISocket, "PluginDir": c.PluginDir,
		"SandboxImage": c.opts.SandboxImage, "Runc": c.Tools.Runc,
		"RequestTimeout": c.opts.RequestTimeout.String(),
		"ValidatorOn":    len(c.opts.RequiredPlugins) > 0, "Required": quote(c.opts.RequiredPlugins),
		"Imports": quote(c.opts.Imports),
	})
	if err != nil {
		return err
	}
	if c.opts.RegistryHost != "" {
		hosts := filepath.Join(c.Dir, "certs.d", c.opts.RegistryHost)
		if err := os.MkdirAll(hosts, 0o755); err != nil {
			return err
		}
		toml := fmt.Sprintf("server = \"http://%[1]s\"\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", c.opts.RegistryHost)
		if err := os.WriteFile(filepath.Join(hosts, "hosts.toml"), []byte(toml), 0o644); err != nil {
			return err
		}
	}
	crictlYAML := fmt.Sprintf("runtime-endpoint: unix://%[1]s\nimage-endpoint: unix://%[1]s\ntimeout: 30\n", c.Socket)
	if err := os.WriteFile(filepath.Join(c.Dir, "crictl.yaml"), []byte(crictlYAML), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Dir, "config.toml"), buf.Bytes(), 0o644)
}

// Start starts containerd and waits until the CRI answers.
func (c *Containerd) Start() error {
	logf, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(c.Tools.Containerd, "--config", filepath.Join(c.Dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// The shim is found on PATH.
	cmd.Env = append(os.Environ(), "PATH="+c.Tools.BinDir+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting containerd: %w", err)
	}
	c.cmd, c.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(c.exited) }()
	err = Poll(20*time.Second, func() error {
		select {
		case <-c.exited:
			return Permanent(fmt.Errorf("containerd exited; see %s:\n%s", c.LogPath, c.LogTail(20)))
		default:
		}
		_, err := c.Crictl("info")
		return err
	})
	if err != nil {
		return fmt.Errorf("containerd did not become ready: %w", err)
	}
	return nil
}

// Stop stops containerd (SIGTERM, then SIGKILL). Containers keep running in
// their shims, as on a real node.
func (c *Containerd) Stop() error {
	if c.cmd == nil {
		return nil
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
	return nil
}

// Restart stops and starts containerd with the same state.
func (c *Containerd) Restart() error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.Start()
}

// SetRequiredPlugins rewrites the validator's required_plugins; it takes effect
// at the next Restart.
func (c *Containerd) SetRequiredPlugins(names ...string) error {
	c.opts.RequiredPlugins = names
	return c.writeConfig()
}

// Close removes every pod, stops containerd, kills leftover shims and removes
// the directory.
func (c *Containerd) Close() error {
	if c.cmd != nil {
		c.Crictl("rmp", "--all", "--force")
		c.Stop()
	}
	killShims(c.Socket)
	unmountUnder(c.Dir)
	return os.RemoveAll(c.Dir)
}

// ConfigPath is containerd's main config file.
func (c *Containerd) ConfigPath() string { return filepath.Join(c.Dir, "config.toml") }

// ConfigDump returns "containerd config dump": the config containerd runs
// with, imports merged.
func (c *Containerd) ConfigDump() (string, error) {
	out, err := exec.Command(c.Tools.Containerd, "--config", c.ConfigPath(), "config", "dump").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("containerd config dump: %v: %s", err, stderr)
	}
	return string(out), nil
}

// LogTail returns the last n lines of containerd's log.
func (c *Containerd) LogTail(n int) string { return tail(c.LogPath, n) }

// Crictl runs crictl against this containerd and returns its stdout; on
// failure the error holds stderr (where crictl prints the runtime's reason).
func (c *Containerd) Crictl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Tools.Crictl, append([]string{"--config", filepath.Join(c.Dir, "crictl.yaml")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CommandError{Args: append([]string{"crictl"}, args...), Err: err, Stderr: stderr.String()}
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Ctr runs ctr in the k8s.io namespace.
func (c *Containerd) Ctr(args ...string) (string, error) { return c.CtrIn("k8s.io", args...) }

// CtrIn runs ctr in a containerd namespace.
func (c *Containerd) CtrIn(namespace string, args ...string) (string, error) {
	cmd := exec.Command(c.Tools.Ctr, append([]string{"--address", c.Socket, "-n", namespace}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+c.Tools.BinDir+":"+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CommandError{Args: append([]string{"ctr"}, args...), Err: err, Stderr: stderr.String()}
	}
	return strings.TrimSpace(stdout.String()), nil
}

// CommandError is a failed command with what it printed on stderr.
type CommandError struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Stderr))
}

// killShims kills the runc shims serving the containerd at socket: they
// outlive containerd by design.
func killShims(socket string) { KillProcesses("-address " + socket) }

// unmountUnder unmounts what containerd left mounted below dir (deepest first).
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			mounts = append(mounts, f[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return LastLines(string(b), n)
}

// LastLines returns the last n lines of s (a log), for failure messages.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// KillProcesses SIGKILLs every process whose command line contains s and
// returns how many it killed.
func KillProcesses(s string) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
		if pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
