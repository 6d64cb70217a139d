#!/bin/sh
# nri-csig preremove. deb: "remove" | "upgrade new-version" | ...; rpm: 0 = erase, 1 = upgrade.
set -e
root="${DPKG_ROOT:-}"
# Tests put a fake systemctl here (packaging/packaging_test.go).
systemctl=${NRI_CSIG_TEST_SYSTEMCTL:-systemctl}
live() { [ -z "$root" ] && { [ -n "${NRI_CSIG_TEST_SYSTEMCTL:-}" ] || [ -d /run/systemd/system ]; }; }
case "$1" in
  remove|0) ;;
  *) exit 0 ;;
esac
if live; then
  "$systemctl" disable --now nri-csig-reload.path nri-csig.service nri-csig-preinstalled-check.timer || true
fi
# Pre-installed mode (mode.sh preinstalled copied these): without them
# removed, containerd would launch a wrapper whose binary is gone and keep
# requiring nri-csig.
for f in /opt/nri/plugins/50-nri-csig /etc/nri/conf.d/50-nri-csig.conf /etc/containerd/conf.d/51-nri-csig-preinstalled.toml; do
  if [ -e "$root$f" ]; then
    rm -f "$root$f"
    echo "nri-csig: removed $f (pre-installed mode)" >&2
  fi
done
echo "nri-csig: removed /etc/containerd/conf.d/50-nri-csig.toml; containerd keeps requiring nri-csig" >&2
echo "nri-csig:   (and refuses every container) until it restarts: systemctl restart containerd" >&2
