#!/bin/sh
# The guest is what the host asked for: CPUs, NUMA nodes, swap.
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "not ok: $1"; fail=1; fi; }
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p"; }
check "2 CPUs online" '[ "$(nproc)" = 2 ]'
nodes=$(arg ksm.nodes)
[ -n "$nodes" ] && check "$nodes NUMA nodes" \
	'[ "$(ls -d /sys/devices/system/node/node[0-9]* | wc -l)" = "$nodes" ]'
[ -n "$(arg ksm.swap)" ] && check "zram swap active" 'grep -q zram0 /proc/swaps'
check "LKDTM in debugfs" '[ -d /sys/kernel/debug/provoke-crash ]'
check "KSM selftests present" '[ -x ksm_tests ] && [ -x ksm_functional_tests ]'
exit $fail
