#!/bin/sh
# /init of the migrated domU (busybox only). It keeps a counter with its own timestamps and checks
# memory checksums, and reports on its console (hvc0) only when asked, with lines the harness reads:
#   FERRY-GUEST-READY files=N
#   FERRY-CHECK <k> bad=<b> slots=<s> last=<n>:<t> gap=<na>:<ta>-<nb>:<tb>
# k counts the checks this guest has run (it travels with the guest's memory), b the failures so
# far, n:t is the newest tick (counter : the guest's boot-time clock in seconds) and na:ta-nb:tb the
# two consecutive ticks with the longest pause between them since the previous check.
# The checked area is FILES x 1 MiB of random data in the initramfs' tmpfs (guest RAM), summed once
# and never written again; the ticker also writes its counter into one of 256 small files each tick
# (/data/s<n mod 256>) so memory keeps being dirtied while the guest migrates, and a check verifies
# that each holds a tick of its own slot.
#
# Quiet on purpose. Under QEMU 7.2's TCG (Debian bookworm's), a PVH guest that is busy while
# log-dirty is on crashes: a fault taken while the CPU delivers an interrupt reaches the guest as a
# page fault, which recurses on the entry stack (kernel panic "ENTRY_TRAMPOLINE stack guard page
# was hit", or a triple fault). It happened with HAP and with shadow paging alike, so it is QEMU's
# SVM emulation, not Xen's paging. Ticking 20 times a second crashed every migration we ran; once a
# second, printing nothing until asked, the guest came through. So the ticker forks nothing and
# prints nothing (read, echo and the pause, a read with a timeout, are shell builtins), and the
# harness asks for a check by writing "check" to the console's pty.

PATH=/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

arg() { sed -n "s/.*ferry\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
FILES=$(arg files); FILES=${FILES:-16}
SLEEP_US=$(arg sleep_us); SLEEP_US=${SLEEP_US:-1000000}
SLOTS=256

mkdir -p /data
i=0
while [ "$i" -lt "$FILES" ]; do
  dd if=/dev/urandom of=/data/m$i bs=65536 count=16 2>/dev/null
  i=$((i + 1))
done
sha256sum /data/m* > /data/checksums

checks=0
bad=0
seen_lines=0
check() {
  # One sha256sum over the whole area (few processes: see above).
  for f in $(sha256sum -c /data/checksums 2>/dev/null | sed -n 's/: FAILED$//p'); do
    echo "FERRY-BAD $f"
    bad=$((bad + 1))
  done
  slots=0
  for f in /data/s[0-9]*; do
    [ -e "$f" ] || continue
    read -r v < "$f"
    if [ $((v % SLOTS)) -ne "${f#/data/s}" ]; then
      echo "FERRY-BAD $f=$v"
      bad=$((bad + 1))
    fi
    slots=$((slots + 1))
  done
  checks=$((checks + 1))
  # The tick log since the previous check: the newest tick and the longest pause.
  report=$(awk -v skip="$seen_lines" 'NR > skip {
      if (NR > skip + 1 && $2 - t > gap) { gap = $2 - t; a = n ":" t; b = $1 ":" $2 }
      n = $1; t = $2; lines = NR
    }
    END { printf "%d last=%s:%s gap=%s-%s", lines, n, t, (a == "" ? "0:0" : a), (b == "" ? "0:0" : b) }' /data/ticks)
  seen_lines=$((${report%% *} - 1))
  echo "FERRY-CHECK $checks bad=$bad slots=$slots ${report#* }"
}

echo "0 0" > /data/ticks
check
echo "FERRY-GUEST-READY files=$FILES"

# Checks on request: each line "check" on the console runs one.
(
  while read -r line; do
    case "$line" in *check*) check ;; esac
  done < /dev/hvc0
) &

# The pause between ticks is a read with a timeout on a fifo nobody writes (usleep would fork).
mkfifo /run-never
exec 3<>/run-never
PAUSE=$(awk "BEGIN { printf \"%.3f\", $SLEEP_US / 1000000 }")
n=0
while :; do
  n=$((n + 1))
  read -r up _ < /proc/uptime
  echo "$n $up" >> /data/ticks
  echo "$n" > /data/s$((n % SLOTS))
  read -r -t "$PAUSE" -u 3 _
done
