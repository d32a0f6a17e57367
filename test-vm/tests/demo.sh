#!/bin/sh
# make demo, inside the guest: processes with identical memory, ksmd turned
# on through sysfs, and what it saved.
ksm=/sys/kernel/mm/ksm
if [ ! -d $ksm ]; then
	echo "This kernel has no KSM yet: our engine has not landed in the series,"
	echo "so the release config builds with CONFIG_KSM=n and there is nothing"
	echo "to merge.  The kernel booted and the test VM works; that is all."
	exit 0
fi
procs=4 mib=32
echo "Starting $procs processes, each with the same $mib MiB of data."
for i in $(seq $procs); do ./fill $mib 42 > /tmp/fill.$i & done
for i in $(seq $procs); do
	while ! grep -q ready /tmp/fill.$i 2>/dev/null; do sleep 0.1; done
done
echo 1000 > $ksm/pages_to_scan
echo 10 > $ksm/sleep_millisecs
echo "Turning ksmd on: echo 1 > $ksm/run"
echo 1 > $ksm/run
pg=$(( $(getconf PAGESIZE) ))
possible=$(( procs * mib * 1048576 / pg - mib * 1048576 / pg ))
t0=$(date +%s)
printf '%8s %14s %14s %10s\n' seconds pages_shared pages_sharing "MiB saved"
last=-1 same=0
while :; do
	shared=$(cat $ksm/pages_shared) sharing=$(cat $ksm/pages_sharing)
	printf '%8s %14s %14s %10s\n' $(( $(date +%s) - t0 )) "$shared" \
		"$sharing" $(( sharing * pg / 1048576 ))
	[ "$sharing" = "$last" ] && same=$((same + 1)) || same=0
	last=$sharing
	[ $same -ge 2 ] || [ $(( $(date +%s) - t0 )) -gt 120 ] && break
	sleep 1
done
echo "Saved $(( sharing * pg / 1048576 )) MiB of a possible $(( possible * pg / 1048576 )) MiB."
kill $(jobs -p) 2>/dev/null
echo 2 > $ksm/run
echo "Unmerged with run=2: pages_shared=$(cat $ksm/pages_shared) pages_sharing=$(cat $ksm/pages_sharing)"
