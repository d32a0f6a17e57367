#!/bin/sh
# make demo, inside the guest: what KSM was made for.  Three small QEMU
# guests (TCG, -machine mem-merge=on: QEMU registers their RAM with
# madvise(MADV_MERGEABLE)) each fill 64 MiB with the same data; ksmd is
# turned on through sysfs and merges their identical pages; run=2 unmerges
# them again while the guests keep running.  The initramfs is the one of
# test-vm/build-initramfs --demo.  Fails if KSM merged nothing or did not
# unmerge everything.
ksm=/sys/kernel/mm/ksm
guests=3 mem=96 fill=64
pg=4096
if [ ! -d $ksm ]; then
	echo "This kernel has no KSM ($ksm is missing): nothing to show."
	exit 1
fi
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -f /demo/bzImage ]; then
	echo "No QEMU here: boot the initramfs of 'test-vm/build-initramfs --demo'."
	exit 1
fi

in_use() {	# MiB of RAM in use in this guest
	awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 }
	     END { print int((t - a) / 1024) }' /proc/meminfo
}
row() {
	shared=$(cat $ksm/pages_shared) sharing=$(cat $ksm/pages_sharing)
	printf '%8s %13s %13s %10s %10s\n' $(( $(date +%s) - t0 )) "$shared" \
		"$sharing" $(( sharing * pg / 1048576 )) "$(in_use)"
}
header() {
	printf '%8s %13s %13s %10s %10s\n' seconds pages_shared pages_sharing \
		"MiB saved" "MiB in use"
}
stop_guests() {
	for pid in $pids; do kill "$pid" 2>/dev/null; done
	wait
}

echo "$(qemu-system-x86_64 --version | head -n 1), from Debian's packages."
echo "Starting $guests guests: qemu-system-x86_64 -machine pc,mem-merge=on" \
	"-accel tcg -m ${mem}M,"
echo "each booting this same kernel with an /init that fills $fill MiB of" \
	"its RAM with the same pages."
echo "$(in_use) MiB in use before they start."
t0=$(date +%s)
pids=
for i in $(seq $guests); do
	qemu-system-x86_64 -machine pc,mem-merge=on -accel tcg -m ${mem}M \
		-nodefaults -display none -no-reboot \
		-kernel /demo/bzImage -initrd /demo/initramfs.cpio.gz \
		-append "console=ttyS0 quiet panic=-1 -- $fill 42" \
		-serial "file:/tmp/guest$i.log" 2>"/tmp/guest$i.err" &
	pids="$pids $!"
done
waiting=$(seq $guests)
while [ -n "$waiting" ]; do
	sleep 1
	for i in $waiting; do
		if grep -q ready "/tmp/guest$i.log" 2>/dev/null; then
			echo "Guest $i is up and has filled its memory after" \
				"$(( $(date +%s) - t0 ))s."
			waiting=$(echo "$waiting" | grep -vx "$i")
		elif ! kill -0 "$(echo "$pids" | cut -d' ' -f$((i + 1)))" ||
		     [ $(( $(date +%s) - t0 )) -ge 300 ]; then
			echo "Guest $i did not come up.  Its QEMU said:"
			cat "/tmp/guest$i.err" "/tmp/guest$i.log"
			stop_guests
			exit 1
		fi
	done
done
rss=0
for pid in $pids; do
	rss=$(( rss + $(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status") ))
done
echo "The $guests QEMU processes hold $(( rss / 1024 )) MiB of anonymous" \
	"memory; $(in_use) MiB in use."
echo

echo 2000 > $ksm/pages_to_scan
echo 20 > $ksm/sleep_millisecs
echo "Turning ksmd on: echo 1 > $ksm/run (pages_to_scan=2000, sleep_millisecs=20)"
echo 1 > $ksm/run
t0=$(date +%s)
header
best=0 same=0 grew_at=0
while :; do
	row
	scans=$(cat $ksm/full_scans)
	# Growth is more than 0.5%: the guests' own activity moves a few pages.
	if [ "$sharing" -gt $(( best + best / 200 )) ]; then
		best=$sharing same=0 grew_at=$scans
	else
		same=$((same + 1))
	fi
	# Settled: no growth in the last 3 samples and over a full scan.
	[ "$sharing" -gt 0 ] && [ $same -ge 3 ] && [ "$scans" -gt "$grew_at" ] &&
		break
	if [ $(( $(date +%s) - t0 )) -ge 120 ]; then
		echo "Still changing after 120s; stopped watching."
		break
	fi
	sleep 1
done
saved=$(( sharing * pg / 1048576 ))
echo "After $(( $(date +%s) - t0 ))s and $scans full scans: $saved MiB saved," \
	"$(( shared + sharing )) pages of guest RAM are backed by $shared."
echo "The filled memory alone gives $(( (guests - 1) * fill )) MiB ($((guests - 1))" \
	"of $guests copies); the rest is the guests' identical kernels and zero pages."
echo

echo "Unmerging with the guests still running: echo 2 > $ksm/run"
echo 2 > $ksm/run &
unmerge=$!
t0=$(date +%s)
header
row
while kill -0 $unmerge 2>/dev/null; do
	sleep 1
	row
done
wait $unmerge || echo "writing 2 to $ksm/run failed"
[ "$shared$sharing" = 00 ] || row
echo "After run=2: pages_shared=$shared pages_sharing=$sharing," \
	"$(in_use) MiB in use."
echo "Stopping the guests."
stop_guests

if [ "$sharing" -gt 0 ] || [ "$shared" -gt 0 ]; then
	echo "FAILED: run=2 left merged pages behind."
	exit 1
fi
if [ "$saved" -lt $fill ]; then
	echo "FAILED: KSM saved only $saved MiB; the filled memory alone gives" \
		"$(( (guests - 1) * fill )) MiB."
	exit 1
fi
echo "KSM merged the guests' identical memory and unmerged it again."
