#!/bin/sh
# nri-csig-preinstalled-check.service: restart containerd when the
# pre-installed nri-csig (PID in /run/nri-csig/preinstalled.pid, written by
# the wrapper at every launch) is gone or a zombie. Prints what it did.
pidfile=${NRI_CSIG_PIDFILE:-/run/nri-csig/preinstalled.pid}
systemctl=${NRI_CSIG_TEST_SYSTEMCTL:-systemctl}
proc=${NRI_CSIG_TEST_PROC:-/proc}
# containerd not running: nothing to do (it launches the plugin when it starts).
"$systemctl" is-active --quiet containerd.service || exit 0
pid=$(cat "$pidfile" 2>/dev/null)
# nri-csigd since the daemon has its own binary; nri-csig before (a daemon
# started by an older package, until containerd restarts).
comm=$(cat "$proc/$pid/comm" 2>/dev/null)
if [ -n "$pid" ] && { [ "$comm" = nri-csigd ] || [ "$comm" = nri-csig ]; }; then
  state=$(sed 's/^.*) //' "$proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  [ "$state" != Z ] && exit 0
fi
# At most one restart a minute: a daemon that cannot start (malformed config)
# would otherwise have containerd restarted every 15 s.
stamp=$(dirname "$pidfile")/check-restarted
if [ -n "$(find "$stamp" -mmin -1 2>/dev/null)" ]; then
  echo "nri-csig: the pre-installed plugin is not running and containerd was restarted less than a minute ago; see journalctl -t nri-csig and /var/log/nri-csig.log"
  exit 1
fi
mkdir -p "$(dirname "$stamp")" && touch "$stamp"
echo "nri-csig: the pre-installed plugin (pid ${pid:-unknown}) is not running; containerd refuses every container until it restarts: restarting containerd"
exec "$systemctl" restart containerd.service
