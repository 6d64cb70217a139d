#!/bin/sh
# Switch nri-csig between its two running modes (docs/OPERATIONS.md):
#
#   mode.sh preinstalled  RECOMMENDED. containerd launches nri-csig from
#                         /opt/nri/plugins and accepts no external NRI
#                         plugin (disable_connections = true), so no other
#                         process can register as nri-csig.
#   mode.sh external      nri-csig.service connects to the NRI socket.
#
# Either way the change takes effect when containerd restarts; the script
# says so and does not restart it. Running containers survive the restart.
# NRI_CSIG_ROOT (tests) prefixes every path; NRI_CSIG_TEST_SYSTEMCTL replaces
# systemctl.
set -e
root=${NRI_CSIG_ROOT:-}
systemctl=${NRI_CSIG_TEST_SYSTEMCTL:-systemctl}
share=$root/usr/share/nri-csig/preinstalled
wrapper=$root/opt/nri/plugins/50-nri-csig
conf=$root/etc/nri/conf.d/50-nri-csig.conf
dropin=$root/etc/containerd/conf.d/51-nri-csig-preinstalled.toml

# put SRC DST MODE: write DST as a new file and rename it into place (a
# running wrapper cannot be overwritten: "Text file busy").
put() {
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.new"
  chmod "$3" "$2.new"
  mv -f "$2.new" "$2"
}

case "$1" in
  preinstalled)
    put "$share/50-nri-csig" "$wrapper" 0755
    put "$share/50-nri-csig.conf" "$conf" 0644
    put "$share/containerd-50-nri-csig.toml" "$dropin" 0644
    "$systemctl" disable --now nri-csig.service
    "$systemctl" enable --now nri-csig-preinstalled-check.timer
    echo "nri-csig: pre-installed mode set up; restart containerd to launch it (and to refuse external NRI plugins):"
    echo "nri-csig:   systemctl restart containerd"
    ;;
  external)
    rm -f "$wrapper" "$conf" "$dropin"
    "$systemctl" disable --now nri-csig-preinstalled-check.timer
    "$systemctl" enable --now nri-csig.service
    echo "nri-csig: external mode set up; restart containerd to stop launching the pre-installed plugin:"
    echo "nri-csig:   systemctl restart containerd"
    ;;
  *)
    echo "usage: $0 preinstalled|external" >&2
    exit 2
    ;;
esac
