# Sourced by the client-* tests (ksmtuned.sh, memoryksm.sh): result lines,
# the KSM knobs, and putting back the knobs a client may change.  The test
# defines stop_client(), which ends whatever it started; it runs first at
# exit, then the knobs are restored.
ksm=/sys/kernel/mm/ksm
fail=0

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
knob() { cat $ksm/$1; }

old_run=$(knob run) old_pages=$(knob pages_to_scan)
old_sleep=$(knob sleep_millisecs)

restore_knobs() {
	stop_client
	wait 2>/dev/null
	echo "$old_pages" > $ksm/pages_to_scan
	echo "$old_sleep" > $ksm/sleep_millisecs
	echo "$old_run" > $ksm/run
}
trap restore_knobs EXIT
