#!/bin/sh
# nri-csig postremove. deb: "remove" | "purge" | "upgrade ..."; rpm: 0 = erase, 1 = upgrade.
set -e
root="${DPKG_ROOT:-}"
case "$1" in
  purge) rm -rf "$root/var/lib/nri-csig" ;;
esac
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
