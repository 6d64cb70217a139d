#!/bin/sh
# nri-csig-reload.service, pre-installed mode: SIGHUP the daemon containerd
# launched (PID in /run/nri-csig/preinstalled.pid, written by the wrapper),
# if it runs. A bad config is refused by the daemon and the one in force stays.
pidfile=${NRI_CSIG_PIDFILE:-/run/nri-csig/preinstalled.pid}
proc=${NRI_CSIG_TEST_PROC:-/proc}
pid=$(cat "$pidfile" 2>/dev/null) || exit 0
[ "$(cat "$proc/$pid/comm" 2>/dev/null)" = nri-csig ] || exit 0
exec kill -HUP "$pid"
