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
  "$systemctl" disable --now nri-csig-reload.path nri-csig.service || true
fi
echo "nri-csig: removed /etc/containerd/conf.d/50-nri-csig.toml; containerd keeps requiring nri-csig" >&2
echo "nri-csig:   (and refuses every container) until it restarts: systemctl restart containerd" >&2
