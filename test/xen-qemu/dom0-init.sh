#!/bin/sh
# /init of a nested Xen host's dom0 (busybox plus Debian's Xen 4.17 tools). Brings up the Xen
# daemons, the user-network link to the outer machine and the 9p shares, then serves a shell on a
# TCP port that the harness reaches through QEMU's hostfwd. Progress markers go to the kernel
# console (hvc0 -> the QEMU serial log): FERRY-DOM0-STEP <what>, then FERRY-DOM0-READY.
# Parameters come from the kernel command line: ferry.host=<name> ferry.ctl=<port>.

PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu
export PATH LD_LIBRARY_PATH
step() { echo "FERRY-DOM0-STEP $*" > /dev/console; }
fail() { echo "FERRY-DOM0-FAILED $*" > /dev/console; exec sh; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm

arg() { sed -n "s/.*ferry\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
HOST=$(arg host)
CTL=$(arg ctl)
hostname "${HOST:-xen}"

step modules
for m in $(cat /etc/ferry/modules); do
  insmod "$m" || fail "insmod $m"
done
mount -t xenfs xenfs /proc/xen || fail "mount xenfs"

step network
ip link set lo up
ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up || fail "eth0"
route add default gw 10.0.2.2

step shares
mkdir -p /host /work
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro hostshare /host || fail "9p hostshare"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work /work || fail "9p work"
for lib in libstdc++.so.6 libgcc_s.so.1 libdl.so.2 libpthread.so.0 libm.so.6; do
  [ -e /usr/lib/x86_64-linux-gnu/$lib ] || ln -s /host/usr/lib/x86_64-linux-gnu/$lib /usr/lib/x86_64-linux-gnu/$lib
done
[ -e /usr/bin/env ] || ln -s /bin/busybox /usr/bin/env

step xen-daemons
mkdir -p /run/xen /run/xenstored /var/run /var/lib/xen /var/lib/xenstored /var/log/xen /var/lib/xen/dump /work/console
ln -sfn /run/xen /var/run/xen
xenstored --pid-file /run/xenstored.pid || fail xenstored
xen-init-dom0 || fail xen-init-dom0
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/work/console || fail xenconsoled

echo "$HOST" > /work/ready

echo "FERRY-DOM0-READY host=$HOST ctl=$CTL" > /dev/console
# The control shell: one sh per connection, its stdin/stdout the connection (see dom0-shell.ts).
# init must never exit, so the listener is restarted should it ever end.
while :; do
  nc -ll -p "$CTL" -e /bin/sh
  sleep 1
done
