#!/bin/sh
# nri-csig postremove. deb: "remove" | "purge" | "upgrade ..."; rpm: 0 = erase, 1 = upgrade.
set -e
root="${DPKG_ROOT:-}"
# Tests put a fake systemctl here (packaging/packaging_test.go).
systemctl=${NRI_CSIG_TEST_SYSTEMCTL:-systemctl}
live() { [ -z "$root" ] && { [ -n "${NRI_CSIG_TEST_SYSTEMCTL:-}" ] || [ -d /run/systemd/system ]; }; }
case "$1" in
  purge) rm -rf "$root/var/lib/nri-csig" ;;
esac
if live; then
  "$systemctl" daemon-reload || true
fi
