# The front door.  Every target is a script in scripts/ or test-vm/.
.PHONY: demo check bench soak kcsan fuzz setup tree kernel kernel-debug kernel-stock \
	initramfs checkpatch series clean

demo:
	@scripts/demo

# make check QUICK=1: the release kernel only, without the long tests or
# the build of each patch of the series
check:
	@QUICK=$(QUICK) scripts/check

bench:
	@scripts/bench

# make soak DURATION=<seconds> (default 600)
soak:
	@scripts/soak $(DURATION)

# the ksm suite on the KCSAN kernel; fails on data races in our code only
kcsan:
	@scripts/kcsan

# make fuzz DURATION=<seconds> (default 1800) [SEED=<trinity's seed>]
fuzz:
	@scripts/fuzz $(DURATION)

setup:
	@scripts/setup

tree: setup
	@scripts/tree

kernel: tree
	@scripts/build-kernel release

kernel-debug: tree
	@scripts/build-kernel debug

kernel-stock: tree
	@scripts/build-kernel stock

initramfs: tree
	@test-vm/build-initramfs

checkpatch: tree
	@scripts/checkpatch

series: tree
	@scripts/export-series

clean:
	rm -rf build
