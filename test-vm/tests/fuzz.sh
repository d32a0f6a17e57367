# fuzz.sh [--kmemleak] [SECONDS]: Debian's trinity, a syscall fuzzer, on
# the memory syscalls KSM meets, with every mapping it makes mergeable
# (merge_exec sets PR_SET_MEMORY_MERGE before the exec), as nobody, while
# ksm_fuzz keeps ksmd scanning at full speed, flips run among 1, 2 and 0,
# throws bad values at every tunable and keeps a helper's pages checked
# against their shadow; at the end, its checks (ksm_fuzz.c says which).
# No SECONDS: ksm.fuzz= on the kernel command line.  ksm.fuzz_seed= on it
# gives trinity's seed (and ksm_fuzz's), else a random one is drawn and
# printed.
# --kmemleak: kmemleak forgets the suspects it knew before, and scans
# after the fuzz; a suspect with a KSM function in its backtrace fails.
# trinity runs without privileges: it cannot write /sys/kernel/mm/ksm,
# reboot, signal init or touch the test's own processes.  fork and clone
# are asked for but trinity avoids them by design (it forks its children
# itself, all the time); it says so at its start.  No sockets: the test
# kernel has no file locking, which trinity's socket cache needs, and
# mmap() has no use for them.
arg() {
	for w in $(cat /proc/cmdline); do
		case "$w" in "$1"=*) echo "${w#*=}"; return ;; esac
	done
}

kmemleak=
[ "$1" = --kmemleak ] && kmemleak=/sys/kernel/debug/kmemleak && shift
seconds=${1:-$(arg ksm.fuzz)}
seed=$(arg ksm.fuzz_seed)
[ -n "$seed" ] || seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
children=4
nobody=65534

dir=/tmp/fuzz
rm -rf $dir
mkdir -p $dir/victims/dir
dd if=/dev/zero of=$dir/victims/zero bs=4096 count=64 2>/dev/null
dd if=/dev/urandom of=$dir/victims/random bs=4096 count=64 2>/dev/null
echo fuzz > $dir/victims/dir/small
chown -R $nobody:$nobody $dir
cd $dir || exit 1

# trinity's userfaultfd() may then handle kernel faults too.
uffd=/proc/sys/vm/unprivileged_userfaultfd
old_uffd=$(cat $uffd 2>/dev/null)
[ -n "$old_uffd" ] && echo 1 > $uffd

[ -n "$kmemleak" ] && [ -w $kmemleak ] && echo clear > $kmemleak

echo "trinity seed $seed, $children children, ${seconds:-ksm.fuzz=} s"
KSM_FUZZ_SEED=$seed /tests/ksm_fuzz "${seconds:-0}" -- \
	/tests/merge_exec -u $nobody \
	/usr/bin/trinity -q -l off -a64 -C $children -s "$seed" \
	-V $dir/victims --disable-fds=sockets \
	-c mmap -c munmap -c mremap -c madvise -c mprotect -c process_madvise \
	-c prctl -c fork -c clone -c userfaultfd -c move_pages -c mbind
rc=$?
[ -n "$old_uffd" ] && echo "$old_uffd" > $uffd

if [ -n "$kmemleak" ] && [ -w $kmemleak ]; then
	echo scan > $kmemleak
	sleep 6
	echo scan > $kmemleak
	# A report: "unreferenced object ...", then its backtrace, one
	# function a line.  Those with a KSM function in it fail, and are
	# shown; of the others, the first three are shown.
	awk '
	function judge() {
		if (blk == "") return
		n++
		if (ksm) k++
		if (ksm || n - k <= 3) printf "%s", blk
	}
	/^unreferenced object/ { judge(); blk = ""; ksm = 0 }
	{ blk = blk "kmemleak| " $0 "\n" }
	/^ +(\[<[0-9a-f]+>\] )?[A-Za-z0-9_.]*ksm[A-Za-z0-9_.]*\+0x/ { ksm = 1 }
	END { judge(); printf "kmemleak: %d suspects, %d of them in KSM\n", n, k
	      exit k > 0 }' $kmemleak || rc=1
fi
rm -rf $dir
echo "trinity seed $seed (ksm.fuzz_seed=$seed repeats it)"
exit $rc
