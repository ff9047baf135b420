#!/bin/sh
echo "QGA-VM shutdown"
sync
umount /data 2>/dev/null
