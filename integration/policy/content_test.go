//go:build integration

package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// restartDaemon replaces the daemon with one started with extra flags; the
// test's cleanup puts back a daemon with the suite's defaults.
func restartDaemon(t *testing.T, extra ...string) {
	t.Helper()
	daemon.Stop()
	d, err := env.Containerd.StartDaemon(nodeConfig, extra...)
	if err != nil {
		t.Fatal(err)
	}
	daemon = d
	t.Cleanup(func() {
		daemon.Stop()
		d, err := env.Containerd.StartDaemon(nodeConfig)
		if err != nil {
			t.Fatalf("restarting the suite's daemon: %v", err)
		}
		daemon = d
	})
}

// enforceEverywhere makes the "*" policy judge containers outside the CRI
// and stops the untrusted ones.
func enforceEverywhere(t *testing.T) {
	t.Helper()
	restartDaemon(t, "--stop-untrusted")
	editBundle(t, "policy", "enable", "everything")
	t.Cleanup(func() { editBundle(t, "policy", "disable", "everything") })
}

// waitNotRunning polls until containerd has no running task for id.
func waitNotRunning(t *testing.T, ns, id string) {
	t.Helper()
	err := testbed.Poll(10*time.Second, func() error {
		out, err := env.Containerd.CtrIn(ns, "tasks", "ls")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, id+" ") && strings.Contains(line, "RUNNING") {
				return fmt.Errorf("still running: %s", line)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("the untrusted container was not stopped: %v", err)
	}
}

// Issue 9 item 3: "ctr run" in the CRI's own namespace with the label the CRI
// puts on sandboxes used to be skipped. The label is the client's choice: the
// container is judged by its snapshot, recorded and stopped.
func TestSandboxLabelOutsideCRIJudgedByContent(t *testing.T) {
	enforceEverywhere(t)
	// A pod made through the CRI first: the watcher handles events in order,
	// so once the fake sandbox below is recorded, this pod's sandbox was seen.
	pod := newPod(t, "signed")
	// Pulled (and unpacked) by the CRI after the watcher read the namespace's
	// images for the pod's sandbox: its image events make it read them again.
	unsigned := newImage(t, env.Registry, "app/fake-sandbox:1", "fake-sandbox")
	id := "fake-sandbox"
	if _, err := env.Containerd.CtrIn("k8s.io", "run", "-d", "--net-host", "--label", "io.cri-containerd.kind=sandbox",
		unsigned.Ref, id, "/bin/sh", "-c", "sleep 3600"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeOutsideCRI("k8s.io", id) })
	rec := waitRecord(t, map[string]string{"event": "running", "container_id": id, "containerd_namespace": "k8s.io"})
	if rec["decision"] != "stopped" || rec["rule"] != "policy" || rec["policy"] != "everything" || rec["config_digest"] != unsigned.ConfigDigest {
		t.Errorf("record = %v, want the unsigned config stopped by policy/everything", rec)
	}
	t.Logf("kill after task start (daemon's measure): %v", rec["reason"])
	waitNotRunning(t, "k8s.io", id)
	// The CRI's own sandboxes (pause, pinned by the CRI) are still left alone.
	if recs := daemon.AuditRecords(map[string]string{"event": "running", "container_id": pod.ID}); len(recs) != 0 {
		t.Errorf("the CRI's pod sandbox was judged: %v", recs)
	}
}

// Issue 9 item 3: a containerd client names a signed image in the container
// record over a snapshot prepared from an unsigned image. The watcher judges
// the snapshot, records the unsigned config and stops the container. The
// test measures the kill-after-start window from containerd's own event
// timestamps (task start to task exit).
func TestSignedNameOverUnsignedSnapshotStopped(t *testing.T) {
	signed := newImage(t, env.Registry, "app/claimed-signed:1", "claimed-signed", keyFile(ciKey, "key"))
	unsigned := newImage(t, env.Registry, "app/real-unsigned:1", "real-unsigned")
	enforceEverywhere(t)
	const ns, id = "default", "signed-name-unsigned-rootfs"
	for _, img := range []testbed.Image{signed, unsigned} {
		if _, err := env.Containerd.CtrIn(ns, "images", "pull", "--plain-http", img.Ref); err != nil {
			t.Fatal(err)
		}
	}
	client, err := containerd.New(env.Containerd.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	img, err := client.GetImage(ctx, unsigned.Ref)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewContainer(ctx, id,
		containerd.WithNewSnapshot(id+"-snapshot", img),
		containerd.WithImageName(signed.Ref), // the lie
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("/bin/sh", "-c", "sleep 3600")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeOutsideCRI(ns, id) })
	evs, errs := client.Subscribe(ctx, `topic=="/tasks/start"`, `topic=="/tasks/exit"`)
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var started, exited time.Time
	for exited.IsZero() {
		select {
		case err := <-errs:
			t.Fatalf("event stream: %v", err)
		case <-ctx.Done():
			t.Fatalf("the container's task did not exit: %v\n%s", ctx.Err(), testbed.LastLines(daemon.Log(), 10))
		case env := <-evs:
			ev, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				continue
			}
			switch e := ev.(type) {
			case *apievents.TaskStart:
				if e.ContainerID == id {
					started = env.Timestamp
				}
			case *apievents.TaskExit:
				if e.ContainerID == id && e.ID == id {
					exited = env.Timestamp
				}
			}
		}
	}
	t.Logf("kill-after-start window (containerd event timestamps, task start to task exit): %v", exited.Sub(started))
	rec := waitRecord(t, map[string]string{"event": "running", "container_id": id, "containerd_namespace": ns})
	if rec["decision"] != "stopped" || rec["rule"] != "policy" || rec["policy"] != "everything" || rec["config_digest"] != unsigned.ConfigDigest {
		t.Errorf("record = %v, want the unsigned config stopped by policy/everything", rec)
	}
	if rec["image"] == signed.Ref || !strings.Contains(fmt.Sprint(rec["reason"]), "not the image its root filesystem holds") {
		t.Errorf("record takes the claimed name for the image: %v", rec)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Stopped || st.ExitStatus != 128+uint32(syscall.SIGKILL) {
		t.Errorf("task status = %+v, %v; want stopped by SIGKILL", st, err)
	}
}

// removeOutsideCRI kills and removes a container made with ctr or a client.
func removeOutsideCRI(ns, id string) {
	env.Containerd.CtrIn(ns, "tasks", "kill", "-s", "SIGKILL", id)
	testbed.Poll(5*time.Second, func() error {
		env.Containerd.CtrIn(ns, "tasks", "rm", "-f", id)
		_, err := env.Containerd.CtrIn(ns, "containers", "rm", id)
		return err
	})
}

// createSigned creates (does not start) a container of an image signed by
// witness ci, in a namespace policy ci-required covers.
func createSigned(t *testing.T, name string) (*testbed.Pod, string, testbed.Image) {
	t.Helper()
	img := newImage(t, env.Registry, "app/"+name+":1", name, keyFile(ciKey, "key"))
	pod := newPod(t, "signed")
	id, err := pod.Create(testbed.ContainerSpec{Name: name, Image: img.Ref})
	if err != nil {
		t.Fatalf("creating %s while its image is trusted: %v", name, err)
	}
	return pod, id, img
}

// revokeDigest revokes an image digest through a new bundle.
func revokeDigest(t *testing.T, name, digest string) {
	t.Helper()
	editBundle(t, "revocation", "create", "--name", name, "--image-digest", digest, "--reason", "pulled by the release team")
	t.Cleanup(func() { editBundle(t, "revocation", "delete", name) })
}

// assertNeverRan checks the container is not running and printed nothing:
// its command echoes a greeting first.
func assertNeverRan(t *testing.T, id, name string) {
	t.Helper()
	out, err := env.Containerd.Crictl("ps", "-a", "--id", id, "-o", "json")
	if err != nil {
		t.Fatalf("crictl ps: %v", err)
	}
	if strings.Contains(out, "CONTAINER_RUNNING") {
		t.Errorf("container %s is running: %s", id, out)
	}
	logs, _ := filepath.Glob(filepath.Join(env.Containerd.Dir, "pods", "*", name+".log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if strings.Contains(string(b), "hello from "+name) {
			t.Errorf("container %s ran: %s", name, b)
		}
	}
	t.Logf("container %s never ran: %d log files, none with its greeting", name, len(logs))
}

// Issue 9 item 6: a container created while its image was trusted does not
// start after its digest is revoked: NRI's StartContainer is judged, and its
// error fails the CRI StartContainer in containerd 2.4.2.
func TestCreatedBeforeRevocationDoesNotStart(t *testing.T) {
	_, id, img := createSigned(t, "created-then-revoked")
	revokeDigest(t, "created-then-revoked", img.Digest)
	_, err := env.Containerd.Crictl("start", id)
	if err == nil {
		t.Fatal("crictl start succeeded after the image's digest was revoked")
	}
	for _, want := range []string{"NRI container start failed", "nri-csig: refused container", "revok"} {
		if !strings.Contains(unquote(err), want) {
			t.Errorf("start refusal does not mention %q: %v", want, err)
		}
	}
	rec := waitRecord(t, map[string]string{"event": "start", "container": "created-then-revoked"})
	if rec["decision"] != "deny" || rec["rule"] != "revocation" || rec["revocation"] != "created-then-revoked" {
		t.Errorf("start record = %v, want a deny by the revocation", rec)
	}
	assertNeverRan(t, id, "created-then-revoked")
}

// Issue 9 item 6 with --stop-untrusted: the re-judgement after the bundle
// change has the CRI remove the created container, so it cannot start even
// while nri-csig is not there to refuse the start.
func TestCreatedBeforeRevocationRemovedWhenStoppingUntrusted(t *testing.T) {
	restartDaemon(t, "--stop-untrusted")
	pod, id, img := createSigned(t, "created-then-removed")
	revokeDigest(t, "created-then-removed", img.Digest)
	rec := waitRecord(t, map[string]string{"event": "running", "container_id": id})
	if rec["decision"] != "stopped" {
		t.Fatalf("created container record = %v, want stopped", rec)
	}
	daemon.Stop() // no plugin to refuse the start: only the removal holds
	_, err := env.Containerd.Crictl("start", id)
	if err == nil {
		t.Fatal("crictl start succeeded after the created container was stopped")
	}
	t.Logf("start without the plugin: %v", err)
	// containerd is still sound: a plugin synchronizes with it again.
	d, err := env.Containerd.StartDaemon(nodeConfig, "--stop-untrusted")
	if err != nil {
		t.Fatalf("%v\ncontainerd log:\n%s", err, env.Containerd.LogTail(20))
	}
	daemon = d
	assertNeverRan(t, id, "created-then-removed")
	if names, _ := pod.ContainerNames(); len(names) != 0 {
		t.Errorf("the CRI still lists %v", names)
	}
}

// --sandbox-image-config replaces the CRI's pinned images as the sandbox
// image: a CRI pod's pause sandbox is then judged like any container, and a
// container running the configured image in the CRI namespace is left alone.
func TestSandboxImageConfigFlagReplacesPinnedImages(t *testing.T) {
	other := newImage(t, env.Registry, "app/declared-sandbox:1", "declared-sandbox")
	restartDaemon(t, "--sandbox-image-config", other.ConfigDigest)
	editBundle(t, "policy", "enable", "everything")
	t.Cleanup(func() { editBundle(t, "policy", "disable", "everything") })
	pod := newPod(t, "free")
	const declared, sentinel = "declared-sandbox", "after-declared-sandbox"
	if _, err := env.Containerd.CtrIn("k8s.io", "run", "-d", "--net-host", other.Ref, declared, "/bin/sh", "-c", "sleep 3600"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeOutsideCRI("k8s.io", declared) })
	if _, err := env.Containerd.CtrIn("k8s.io", "run", "-d", "--net-host", env.Untrusted.Ref, sentinel, "/bin/sh", "-c", "sleep 3600"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeOutsideCRI("k8s.io", sentinel) })
	// Events are handled in order: once the sentinel is recorded, the pod's
	// sandbox and the declared one were seen.
	waitRecord(t, map[string]string{"event": "running", "container_id": sentinel})
	if recs := daemon.AuditRecords(map[string]string{"event": "running", "container_id": declared}); len(recs) != 0 {
		t.Errorf("the declared sandbox image was judged: %v", recs)
	}
	rec := waitRecord(t, map[string]string{"event": "running", "container_id": pod.ID})
	if rec["config_digest"] != env.Pause.ConfigDigest || rec["decision"] != "deny" {
		t.Errorf("pause sandbox record = %v, want the pause config judged (denied: unsigned, no --stop-untrusted)", rec)
	}
}
