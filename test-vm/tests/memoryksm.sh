#!/bin/sh
# client-memoryksm: a program that knows nothing of KSM, started the way
# systemd starts a unit with MemoryKSM=yes, has its memory merged.
#
# systemd's exec_child() calls prctl(PR_SET_MEMORY_MERGE, 1) and then
# drops to the unit's User= before execve(); merge_exec does the same.
# The program is Debian's stress-ng, unchanged: two vm workers fill
# 16 MiB each with the zero-one method (every page ends as all ones),
# sleep 25 s with their memory kept (--vm-hang 25 --vm-keep), then write
# it over and check it (--verify): the write breaks the sharing, and
# stress-ng itself fails if a worker reads back what it did not write.
# --no-madvise keeps stress-ng from its random madvise() calls, among
# them MADV_MERGEABLE and MADV_UNMERGEABLE.
#
# A control run without the launcher must merge nothing while ksmd scans
# at full speed (a fill process keeps it busy), so that what the launched
# run merges is the prctl's doing.
nobody=65534
helper= sng=

stop_client() {
	[ -n "$sng" ] && kill -9 $(pgrep stress-ng) 2>/dev/null
	[ -n "$helper" ] && kill -9 "$helper" 2>/dev/null
}
. /tests/client.sh

# Sum of one ksm_stat field over stress-ng's processes ("yes" is 1).
stat_sum() {
	local s=0 p v
	for p in $(pgrep stress-ng); do
		v=$(awk -v f="$1" '$1 == f || $1 == f":" {
			print ($2 == "yes") ? 1 : ($2 == "no") ? 0 : $2 }' \
			/proc/"$p"/ksm_stat 2>/dev/null)
		s=$((s + ${v:-0}))
	done
	echo $s
}
# "PID:merge_any:mergeable" of stress-ng's processes that do not say yes
# to both.
not_merging() {
	local p
	for p in $(pgrep stress-ng); do
		awk -v p="$p" '/^ksm_merge_any:/ { a = $2 } /^ksm_mergeable:/ { m = $2 }
			END { if (NR && (a != "yes" || m != "yes")) print p ":" a ":" m }' \
			/proc/"$p"/ksm_stat 2>/dev/null
	done
}
workers() { pgrep stress-ng-vm | wc -l; }

# $1: the launcher, or nothing.  Starts stress-ng and waits for its
# workers.
start() {
	cd /tmp || exit 1
	$1 /usr/bin/stress-ng --no-madvise --vm 2 --vm-bytes 16M \
		--vm-method zero-one --vm-keep --vm-hang 25 --verify \
		--timeout 60 > /tmp/stress-ng.out 2>&1 &
	sng=$!
	for i in $(seq 300); do
		[ "$(workers)" -ge 2 ] && return 0
		usleep 100000
	done
	bad "stress-ng started no vm workers in 30 s"
	cat /tmp/stress-ng.out
	exit 1
}

# Ends stress-ng; with $1, waits for it to finish its run and report.
finish() {
	rc=0
	if [ -n "$1" ]; then
		wait "$sng"
		rc=$?
	else
		kill -9 $(pgrep stress-ng) 2>/dev/null
		wait "$sng" 2>/dev/null
	fi
	sng=
}

echo 1000 > $ksm/pages_to_scan
echo 0 > $ksm/sleep_millisecs
echo 1 > $ksm/run
/tests/fill 8 3 > /dev/null &
helper=$!

# Control: stress-ng as is.
start ""
scans=$(knob full_scans)
for i in $(seq 600); do
	[ "$(knob full_scans)" -ge $((scans + 2)) ] && break
	usleep 100000
done
[ "$(knob full_scans)" -ge $((scans + 2)) ] ||
	bad "ksmd did not finish two scans in 60 s"
m=$(stat_sum ksm_merging_pages) any=$(stat_sum ksm_merge_any)
mg=$(stat_sum ksm_mergeable)
[ "$m" = 0 ] && [ "$any" = 0 ] && [ "$mg" = 0 ] &&
	ok "without the launcher: nothing merged in two full scans" ||
	bad "without the launcher: ksm_merging_pages $m, merge_any $any, mergeable $mg"
finish

# The unit: stress-ng through the launcher, as nobody.
start "/tests/merge_exec -u $nobody"
best=0
for i in $(seq 200); do
	m=$(stat_sum ksm_merging_pages)
	[ "$m" -gt "$best" ] && best=$m
	[ "$best" -ge 4096 ] && break
	usleep 100000
done
n=$(pgrep stress-ng | wc -l) no=$(not_merging)
[ -z "$no" ] &&
	ok "launched: all $n stress-ng processes: ksm_merge_any and ksm_mergeable yes" ||
	bad "launched: stress-ng processes not merging (pid:merge_any:mergeable): $no"
[ "$best" -ge 4096 ] &&
	ok "launched: ksm_merging_pages reached $best of the 8192 pages" \
		"the workers wrote" ||
	bad "launched: ksm_merging_pages at most $best in 20 s (want 4096)"
finish wait
if [ "$rc" = 0 ] && ! grep -q 'fail' /tmp/stress-ng.out; then
	ok "stress-ng rewrote and verified its merged memory"
else
	bad "stress-ng exited with $rc:"
	cat /tmp/stress-ng.out
fi
exit $fail
