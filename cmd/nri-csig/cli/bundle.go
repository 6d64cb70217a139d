package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/nri-csig/nri-csig/internal/atomicfile"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/spf13/cobra"
)

// defaultBundleFile is where the CLI edits a bundle unless --bundle says otherwise.
const defaultBundleFile = "./csig-bundle.yaml"

// bundleFile is the --bundle flag shared by the witness, policy and bundle
// command groups, and the load/save logic of the file it names.
type bundleFile struct{ path string }

func (f *bundleFile) addFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.path, "bundle", defaultBundleFile, "policy bundle file to read and edit")
	_ = cmd.MarkPersistentFlagFilename("bundle", "yaml", "yml")
}

func (f *bundleFile) sigPath() string { return f.path + policy.SignatureSuffix }

func (f *bundleFile) load() (*policy.Bundle, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no bundle file at %s; create one with 'nri-csig witness create' or pass --bundle", f.path)
	}
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return policy.ParseBundle(f.path, data)
}

// loadOrNew loads the bundle, or starts an empty one when the file is absent.
func (f *bundleFile) loadOrNew() (*policy.Bundle, error) {
	if _, err := os.Stat(f.path); errors.Is(err, fs.ErrNotExist) {
		return policy.NewBundle(bundleName(f.path)), nil
	}
	return f.load()
}

var nameOK = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

func bundleName(path string) string {
	n := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if !nameOK.MatchString(n) || len(n) > 253 {
		return "bundle"
	}
	return n
}

// save raises the serial, validates the result by parsing it back and writes
// it atomically. The signature of the old content no longer applies and is
// removed, so that nobody publishes a bundle with a signature that fails.
func (f *bundleFile) save(cmd *cobra.Command, b *policy.Bundle) error {
	b.Touch()
	data, err := b.Marshal()
	if err != nil {
		return err
	}
	if _, err := policy.ParseBundle(f.path+" (after the edit)", data); err != nil {
		return fmt.Errorf("the edit would make an invalid bundle, nothing was written: %w", err)
	}
	if err := atomicfile.WriteFile(f.path, data, 0o644); err != nil {
		return err
	}
	if err := os.Remove(f.sigPath()); err == nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: removed the signature %s, which no longer matches; run 'nri-csig bundle sign'\n", f.sigPath())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale signature: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: serial %d\n", f.path, b.Serial)
	return nil
}
