#!/bin/sh
# scripts/profile: run one bench workload under perf and print where
# ksmd's CPU went: its kernel symbols (percentages of ksmd's samples), and
# for the top ones the chains of callers that led there.
#   sh prof.sh <workload>
w=${1:?usage: prof.sh <workload>}
echo 0 > /proc/sys/kernel/kptr_restrict
echo -1 > /proc/sys/kernel/perf_event_paranoid
# ksm.prof_window=S on the kernel command line: record only the first S
# seconds after ksmd's first merge (its first pass, where the bench's
# convergence metrics are taken), not the whole run.
window=$(sed -n 's/.*ksm\.prof_window=\([0-9.]*\).*/\1/p' /proc/cmdline)
if [ -n "$window" ]; then
	# perf takes a while to start under TCG: start the workload from it
	perf record -q -a -g -F 4000 -o /tmp/perf.data -- sh -c '
		./bench "$1" 1 > /tmp/bench.out 2>&1 &
		echo $! > /tmp/bench.pid
		until [ "$(cat /sys/kernel/mm/ksm/pages_sharing)" -gt 0 ] ||
		      ! kill -0 $! 2>/dev/null; do
			sleep 0.01
		done
		sleep "$2"' sh "$w" "$window"
	while kill -0 "$(cat /tmp/bench.pid)" 2>/dev/null; do
		sleep 1
	done
	cat /tmp/bench.out
else
	perf record -q -a -g -F 4000 -o /tmp/perf.data ./bench "$w" 1 || exit 1
fi
report() {
	perf report -q -i /tmp/perf.data --stdio --comm ksmd \
		--percentage relative "$@" 2>/dev/null | grep -v '^$'
}
echo "@@PROF counters after the run"
for f in full_scans pages_scanned pages_scrubbed pages_skipped; do
	[ -r /sys/kernel/mm/ksm/$f ] && echo "$f $(cat /sys/kernel/mm/ksm/$f)"
done
echo "@@PROF flat"
report --no-children --sort sym -g none --percent-limit 0.3 | head -80
echo "@@PROF callers"
report --no-children --sort sym -g caller,2,callee,function,percent \
	--percent-limit 4 | head -200
echo "@@PROF hot addresses (where the samples landed)"
perf script -i /tmp/perf.data --comm ksmd -G -F ip,sym 2>/dev/null |
	awk 'NF >= 2 { print $1, $2 }' | sort | uniq -c | sort -rn | head -40
