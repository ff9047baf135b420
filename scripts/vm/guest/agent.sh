#!/bin/sh
# Respawned by init: the suite kills the agent on purpose (restart while frozen).
export PATH=/usr/sbin:/usr/bin
. /run/qga/boot.env
PORT=/dev/virtio-ports/org.qemu.guest_agent.0
case "$AGENT" in
  node) set -- /usr/bin/node /opt/node-qga/dist/cli.js -m virtio-serial -p "$PORT" -t /run/qga --backend "$BACKEND" ;;
  qemu-ga) set -- /usr/sbin/qemu-ga -m virtio-serial -p "$PORT" -t /run/qga ;;
  echo) set -- /usr/bin/node /etc/qga/echo.js "$PORT" ;;
  *) echo "QGA-VM unknown agent $AGENT"; sleep 3600; exit 1 ;;
esac
"$@" &
pid=$!
echo "$pid" > /run/qga/agent.pid
echo "QGA-VM agent-start pid=$pid uptime=$(cut -d' ' -f1 /proc/uptime) $*"
wait "$pid"
rc=$?
echo "QGA-VM agent-exit pid=$pid rc=$rc"
sleep 0.5
