#!/bin/sh
# Test control loop, independent of the agent's own guest-exec: the host writes <n>.sh through
# guest-file-write, then an empty <n>.go; this loop runs the script with output in <n>.out and
# reports "QGA-CTL done <n> rc=<rc>" on the console (which the host reads).
export PATH=/usr/sbin:/usr/bin
cd /run/ctl || exit 1
while :; do
  for go in /run/ctl/*.go; do
    [ -e "$go" ] || continue
    n="${go%.go}"
    rm -f "$go"
    name="$(basename "$n")"
    ( sh "$n.sh" > "$n.out" 2>&1; echo "QGA-CTL done $name rc=$?" ) &
  done
  sleep 0.2
done
