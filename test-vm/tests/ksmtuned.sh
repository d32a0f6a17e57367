#!/bin/sh
# client-ksmtuned: Debian's ksmtuned, unchanged, with the configuration
# its package ships, drives our KSM as it drives the kernel's own.
#
# ksmtuned sums the resident memory of processes whose command line
# matches '^qemu-system.*-enable-kvm' ("committed") and reads free memory
# (MemFree + Buffers + Cached).  With thres = 20% of MemTotal, it stops
# KSM (run=0) while committed + thres < MemTotal and free > thres;
# otherwise it starts KSM (pages_to_scan, sleep_millisecs, run=1) and
# adds 300 to pages_to_scan while free < thres, or takes 50 from it.
# It looks every 60 seconds, or at once on SIGUSR1, which is what the
# test sends instead of waiting.
#
# Its "guests" are two fill processes renamed qemu-system-x86_64 with
# -enable-kvm in their arguments, identical (same seed) and half zero
# pages, sized so that committed + thres exceeds MemTotal, and backed by
# transparent huge pages as QEMU's guest RAM is (KSM splits those it
# merges; 4 KiB faults of 1.4 GiB took minutes on the debug kernel).
# Steps:
#   1. no guests, run=1 (as an administrator left it): it stops KSM;
#   2. guests: it starts KSM, pages_to_scan 300 (boosted from 0, since
#      free < thres), sleep_millisecs as it computes from MemTotal;
#   3. once KSM has merged some of their pages: pages_to_scan moves on
#      (600 if free is still short, 250 if merging freed enough);
#   4. guests gone: it stops KSM again.
# Every knob is put back at the end.
pidfile=/var/run/ksmtune.pid
loop= guests=

stop_client() {
	[ -n "$guests" ] && kill -9 $guests 2>/dev/null
	[ -n "$loop" ] && kill -9 "$loop" 2>/dev/null
	# ksmtuned's loop leaves a "sleep 60" behind each time it is woken.
	for d in /proc/[0-9]*; do
		[ "$(cat "$d/cmdline" 2>/dev/null | tr '\0' ' ')" = "sleep 60 " ] &&
			kill -9 "${d#/proc/}" 2>/dev/null
	done
}
. /tests/client.sh

[ -x /usr/sbin/ksmtuned ] && [ -r /etc/ksmtuned.conf ] || {
	echo "ksmtuned is not in the initramfs"
	exit 1
}
# The shipped configuration sets nothing: every value is the script's own
# default, which the checks below assume.
if grep -q '^[[:space:]]*[A-Z]' /etc/ksmtuned.conf; then
	echo "/etc/ksmtuned.conf is not the one Debian ships:"
	grep '^[[:space:]]*[A-Z]' /etc/ksmtuned.conf
	exit 1
fi

# ksmtuned's own arithmetic, on this machine.
total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
thres=$((total * 20 / 100))
[ $thres -lt 2048 ] && thres=2048
sleep_ms=$((10 * 16 * 1024 * 1024 / total))
[ $sleep_ms -le 10 ] && sleep_ms=10
free_kb() {
	awk '/^(MemFree|Buffers|Cached):/ {f += $2} END {print f}' /proc/meminfo
}
echo "MemTotal $total kB, thres $thres kB, sleep_millisecs $sleep_ms"

# Wake ksmtuned and wait until the knobs say what $1 (a shell test on
# run and pages_to_scan) expects, for at most 120 s.
wake() {
	local i
	kill -USR1 "$loop" || { bad "ksmtuned's loop is gone"; return 1; }
	for i in $(seq 1200); do
		run=$(knob run) pages=$(knob pages_to_scan)
		eval "$1" && return 0
		usleep 100000
	done
	bad "ksmtuned did not act within 120 s: run $run, pages_to_scan $pages"
	return 1
}

# Step 1.  An administrator left KSM running; no guest is committed.
echo 100 > $ksm/pages_to_scan
echo 1 > $ksm/run
PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/sbin/ksmtuned ||
	{ echo "ksmtuned did not start"; exit 1; }
loop=$(cat $pidfile 2>/dev/null)
[ -n "$loop" ] && [ -d /proc/"$loop" ] || {
	echo "ksmtuned wrote no live pid to $pidfile"
	exit 1
}
# SIGUSR1 kills the loop until its trap is set: wait for SigCgt bit 9.
for i in $(seq 100); do
	cgt=$(awk '/^SigCgt:/ {print $2}' /proc/"$loop"/status)
	[ $((0x${cgt#"${cgt%????}"} & 0x200)) -ne 0 ] && break
	usleep 100000
done
wake '[ "$run" = 0 ]' &&
	ok "no guests, memory free: ksmtuned stopped KSM (run 0)"

# Step 2.  Two identical guests, together thres + 32 MiB short of nothing.
mib=$(((total - thres) / 2 / 1024 + 16))
echo "starting two guests of $mib MiB each $(elapsed)"
for n in 1 2; do
	bash -c "exec -a qemu-system-x86_64 /tests/fill $mib 7 50 thp -enable-kvm" \
		> /tmp/guest$n.out &
	guests="$guests $!"
done
for i in $(seq 1800); do
	[ "$(cat /tmp/guest1.out /tmp/guest2.out 2>/dev/null | grep -c ready)" = 2 ] &&
		break
	usleep 100000
done
[ "$(cat /tmp/guest1.out /tmp/guest2.out | grep -c ready)" = 2 ] ||
	{ bad "the guests did not fill their memory in 180 s"; exit 1; }
[ "$(pgrep -f '^qemu-system.*-enable-kvm' | wc -l)" = 2 ] ||
	bad "pgrep does not see the two guests as ksmtuned looks for them"
echo "guests ready: free $(free_kb) kB $(elapsed)"
wake '[ "$run" = 1 ]' || exit 1
slept=$(knob sleep_millisecs)
[ "$pages" = 300 ] && ok "guests committed: ksmtuned started KSM," \
	"pages_to_scan $pages (boosted)" ||
	bad "pages_to_scan $pages after the first boost, not 300 (free $(free_kb) kB)"
[ "$slept" = "$sleep_ms" ] && ok "sleep_millisecs $slept, as ksmtuned computes it" ||
	bad "sleep_millisecs $slept, ksmtuned computes $sleep_ms"

# Step 3.  KSM, run by ksmtuned's settings, merges the guests.
for i in $(seq 1200); do
	[ "$(knob pages_sharing)" -ge 1000 ] && break
	usleep 100000
done
sharing=$(knob pages_sharing)
[ "$sharing" -ge 1000 ] && ok "KSM merged at ksmtuned's pace:" \
	"pages_sharing $sharing, full_scans $(knob full_scans)" ||
	bad "pages_sharing $sharing after 120 s at ksmtuned's settings"
wake '[ "$run" = 1 ] && [ "$pages" != 300 ]' &&
	case $pages in
	250) ok "free $(free_kb) kB: ksmtuned decayed pages_to_scan to 250" ;;
	600) ok "free $(free_kb) kB: ksmtuned boosted pages_to_scan to 600" ;;
	*) bad "pages_to_scan $pages after 300: neither 300 + 300 nor 300 - 50" ;;
	esac

# Step 4.  The guests go away.
kill -9 $guests
wait $guests 2>/dev/null
guests=
wake '[ "$run" = 0 ]' && ok "guests gone: ksmtuned stopped KSM (run 0)"
exit $fail
