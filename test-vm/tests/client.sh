# Sourced by the client-* tests (ksmtuned.sh, memoryksm.sh): result lines,
# the KSM knobs, and putting back the knobs a client may change.  The test
# defines stop_client(), which ends whatever it started; it runs first at
# exit, then every page is unmerged (run=2), the counters are checked and
# the knobs are restored.
ksm=/sys/kernel/mm/ksm
fail=0

# Result lines end with the seconds since the test began: where a slow
# kernel (the debug one) spends its time.
t_start=$(cut -d. -f1 /proc/uptime)
elapsed() { echo "[$(( $(cut -d. -f1 /proc/uptime) - t_start ))s]"; }
ok() { echo "ok: $* $(elapsed)"; }
bad() { echo "FAIL: $* $(elapsed)"; fail=1; }
knob() { cat $ksm/$1; }

old_run=$(knob run) old_pages=$(knob pages_to_scan)
old_sleep=$(knob sleep_millisecs)

# The suite's contract: a test leaves every KSM counter at 0.  run=2
# unmerges what the client merged and drops what ksmd still tracks of its
# processes (an item of an exited process lingers until the next scan).
counters="pages_shared pages_sharing pages_unshared pages_volatile"
counters="$counters ksm_zero_pages stable_node_chains stable_node_dups"
restore_knobs() {
	status=$?
	stop_client
	wait 2>/dev/null
	echo 2 > $ksm/run || bad "restore: run=2 refused"
	for c in $counters; do
		[ "$(knob "$c")" = 0 ] || bad "after run=2: $c is $(knob "$c"), not 0"
	done
	echo "$old_pages" > $ksm/pages_to_scan
	echo "$old_sleep" > $ksm/sleep_millisecs
	echo "$old_run" > $ksm/run
	[ "$fail" = 0 ] || status=1
	exit "$status"
}
trap restore_knobs EXIT
