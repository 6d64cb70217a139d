#!/bin/sh
# nri-csig-reload.service, pre-installed mode: SIGHUP the daemon containerd
# launched (PID in /run/nri-csig/preinstalled.pid, written by the wrapper),
# if it runs. A bad config is refused by the daemon and the one in force stays.
pidfile=${NRI_CSIG_PIDFILE:-/run/nri-csig/preinstalled.pid}
proc=${NRI_CSIG_TEST_PROC:-/proc}
pid=$(cat "$pidfile" 2>/dev/null) || exit 0
# nri-csigd, or nri-csig when an older package started it.
case "$(cat "$proc/$pid/comm" 2>/dev/null)" in
  nri-csigd|nri-csig) ;;
  *) exit 0 ;;
esac
exec kill -HUP "$pid"
