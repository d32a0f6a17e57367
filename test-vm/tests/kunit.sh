#!/bin/sh
# The engine's KUnit suite (mm/ksm_kunit.c, CONFIG_KSM_KUNIT_TEST) runs
# at boot.  Pass if it ran and none of its cases failed; skip (exit 4) on
# a kernel without KUnit, such as the release kernel.
suite=ksm
kdir=/sys/kernel/debug/kunit

if [ -r "$kdir/$suite/results" ]; then
	# Kept by KUnit itself: cannot be pushed out of the log buffer.
	out=$(cat "$kdir/$suite/results")
elif [ -d "$kdir" ]; then
	echo "KUnit is built in but has no '$suite' suite: CONFIG_KSM_KUNIT_TEST=n?"
	exit 1
elif dmesg | grep -q 'KTAP version'; then
	# KUnit without debugfs: read the suite's part of the boot log.
	out=$(dmesg | sed -e 's/^\[[ 0-9.]*\] //' |
		sed -n "/# Subtest: $suite\$/,/^ *\(not \)\{0,1\}ok [0-9]* $suite\$/p")
else
	echo "no KUnit in this kernel"
	exit 4
fi

stats=$(printf '%s\n' "$out" | grep -E "^ *# $suite: pass:[0-9]+ fail:[0-9]+" | tail -n 1)
verdict=$(printf '%s\n' "$out" | grep -E "^ *(not )?ok [0-9]+ $suite\$" | tail -n 1)
pass=$(printf '%s\n' "$stats" | sed -n 's/.* pass:\([0-9]*\) .*/\1/p')
fail=$(printf '%s\n' "$stats" | sed -n 's/.* fail:\([0-9]*\) .*/\1/p')

case "$verdict" in
*"not ok"*) ;;
"") echo "no verdict for the '$suite' suite: did it run?" ;;
*)
	if [ -n "$pass" ] && [ "$pass" -gt 0 ] && [ "$fail" = 0 ]; then
		echo "${stats# *}"
		exit 0
	fi
	echo "no case of the '$suite' suite passed: did it run?"
	;;
esac
printf '%s\n' "$out"
exit 1
