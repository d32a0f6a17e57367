#!/bin/sh
# Memory leaks after the KSM suite (debug kernel: CONFIG_DEBUG_KMEMLEAK,
# without its scanning thread).  Scan twice, a few seconds apart, so that
# an object only in flight during the first scan is not reported, then
# read kmemleak's report.  Fail if an unreferenced object was allocated
# through our code: a frame of its backtrace names a function of ours
# (our-functions, written by build-initramfs from mm/ksm.c and the helpers
# our patches add).  Those are printed in full; other leaks are only
# noted, one line each.  A reference leak shows the backtrace of whoever
# allocated the object, though: an anon_vma that ksmd took a reference on
# (get_anon_vma()) and never put back is noted as allocated by fork() or
# a fault, so notes of anon_vma_alloc from our tests' processes deserve a
# look.  Skip (exit 4) on a kernel without kmemleak, such as the release
# kernel.
k=/sys/kernel/debug/kmemleak
if [ ! -e $k ]; then
	echo "no kmemleak in this kernel"
	exit 4
fi
if grep -qw kmemleak=off /proc/cmdline; then
	echo "kmemleak=off on the kernel command line"
	exit 4
fi
for i in 1 2; do
	[ $i = 1 ] || sleep 5
	t=$(date +%s)
	if ! echo scan > $k; then
		echo "kmemleak refused to scan: it disabled itself (see dmesg)"
		dmesg | grep -i kmemleak | tail -n 5
		exit 1
	fi
	echo "scan $i took $(( $(date +%s) - t ))s"
done
cat $k > /tmp/kmemleak.txt || exit 1

awk -v fns=our-functions '
BEGIN { while ((getline f < fns) > 0) { ours[f] = 1; nfns++ } }
function flush() {
	if (head == "") return
	if (hit != "") {
		nours++
		printf "LEAK through %s:\n%s", hit, text
	} else {
		nother++
		printf "note: leak elsewhere: %s %s %s:%s\n", addr, size, comm, frames
	}
	head = ""
}
/^unreferenced object / {
	flush()
	head = $0; text = $0 "\n"; hit = ""; frames = ""; n = 0
	addr = $3; size = $0; sub(/.*\(/, "(", size); sub(/\):.*/, ")", size)
	next
}
head == "" { next }
{ text = text $0 "\n" }
/^  comm / { comm = $2; gsub(/[",]/, "", comm) }
/^    [A-Za-z_][A-Za-z0-9_.]*\+0x/ {
	f = $1; sub(/\+0x.*/, "", f); sub(/\..*/, "", f)
	if (f in ours && hit == "") hit = f
	# the first frames past the allocator say where the object is from
	if (f !~ /^(kmemleak|kmem_cache_alloc|kmalloc|__kmalloc|kmalloc_trace|__do_kmalloc|kvmalloc|__kvmalloc|krealloc|kmemdup|kstrdup|xas_alloc|xas_nomem|__xa_|xa_|radix_tree_node_alloc|alloc_pages|__alloc_pages|folio_alloc|slab_|__slab|___slab)/ && n++ < 3)
		frames = frames " " f
}
END {
	if (!nfns) { print "no list of our functions in the initramfs"; exit 2 }
	flush()
	printf "%d leak(s) through our code, %d elsewhere\n", nours, nother
	exit nours ? 1 : 0
}' /tmp/kmemleak.txt
