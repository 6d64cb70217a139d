// Command testcredplugin is a kubelet credential provider plugin for the
// integration tests: it speaks credentialprovider.kubelet.k8s.io/v1 on
// stdin/stdout, answers a fixed username and password (from a file) for
// the image's registry, and appends one line per run to --runs, so that a
// test can count how often it was run; with --fail it fails instead.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	runs := flag.String("runs", "", "file to append one line to per run")
	user := flag.String("username", "", "username to answer")
	passwordFile := flag.String("password-file", "", "file holding the password to answer")
	keyType := flag.String("cache-key-type", "Registry", "cacheKeyType to answer")
	duration := flag.String("cache-duration", "", "cacheDuration to answer (empty: none, the provider's default applies)")
	fail := flag.Bool("fail", false, "fail as a plugin whose token service is down: a message on stderr, exit 2")
	flag.Parse()
	if *fail {
		fmt.Fprintln(os.Stderr, "token service unreachable")
		os.Exit(2)
	}
	if err := run(*runs, *user, *passwordFile, *keyType, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "testcredplugin:", err)
		os.Exit(1)
	}
}

func run(runs, user, passwordFile, keyType, duration string) error {
	var req struct{ APIVersion, Kind, Image string }
	data, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if req.APIVersion != "credentialprovider.kubelet.k8s.io/v1" || req.Kind != "CredentialProviderRequest" || req.Image == "" {
		return fmt.Errorf("unexpected request %s", data)
	}
	f, err := os.OpenFile(runs, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, req.Image)
	f.Close()
	password, err := os.ReadFile(passwordFile)
	if err != nil {
		return err
	}
	host, _, _ := strings.Cut(req.Image, "/")
	resp := map[string]any{
		"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderResponse", "cacheKeyType": keyType,
		"auth": map[string]any{host: map[string]string{"username": user, "password": strings.TrimSpace(string(password))}},
	}
	if duration != "" {
		resp["cacheDuration"] = duration
	}
	return json.NewEncoder(os.Stdout).Encode(resp)
}
