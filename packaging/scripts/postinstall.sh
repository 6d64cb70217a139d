#!/bin/sh
# nri-csig postinstall. deb: "configure [old-version]"; rpm: 1 = install, 2 = upgrade.
# Honours DPKG_ROOT (dpkg --root --force-script-chrootless): then it only
# touches files below that root and never talks to systemd.
set -e
root="${DPKG_ROOT:-}"
# Tests put a fake systemctl here (packaging/packaging_test.go).
systemctl=${NRI_CSIG_TEST_SYSTEMCTL:-systemctl}
live() { [ -z "$root" ] && { [ -n "${NRI_CSIG_TEST_SYSTEMCTL:-}" ] || [ -d /run/systemd/system ]; }; }

# /var/lib/nri-csig ships in the package (and StateDirectory= recreates it).

# containerd reads /etc/containerd/conf.d only when its main config imports it.
main="$root/etc/containerd/config.toml"
if [ ! -f "$main" ]; then
  echo "nri-csig: note: $main does not exist, so containerd ignores /etc/containerd/conf.d/50-nri-csig.toml;" >&2
  echo "nri-csig:   copy /usr/share/nri-csig/containerd/config.toml there (see /usr/share/doc/nri-csig/OPERATIONS.md)" >&2
elif ! grep -Eq "^[[:space:]]*imports[[:space:]]*=.*/etc/containerd/conf\.d" "$main"; then
  echo "nri-csig: note: $main does not import /etc/containerd/conf.d/*.toml, so containerd ignores 50-nri-csig.toml;" >&2
  echo "nri-csig:   add  imports = ['/etc/containerd/conf.d/*.toml']  (see /usr/share/doc/nri-csig/OPERATIONS.md)" >&2
fi

live || exit 0

first=
case "$1" in
  configure) [ -n "$2" ] || first=1 ;;
  1) first=1 ;;
esac
"$systemctl" daemon-reload || true
if [ -n "$first" ]; then
  "$systemctl" enable nri-csig.service nri-csig-reload.path || true
  # --no-block: READY=1 comes only once registered with containerd's NRI.
  "$systemctl" --no-block start nri-csig.service nri-csig-reload.path || true
  echo "nri-csig: started; restart containerd to require it (fail-closed): systemctl restart containerd" >&2
else
  # Upgrade: run the new binary. Containers created during the restart (well
  # under a second) are refused and retried by kubelet.
  "$systemctl" --no-block try-restart nri-csig.service || true
fi
