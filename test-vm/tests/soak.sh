# soak.sh [SECONDS]: ksm_soak, with stress-ng's madvise and vm stressors
# (their buffers MADV_MERGEABLE, their data verified) running alongside
# for as long.  No SECONDS: ksm.soak= on the kernel command line.
# stress-ng 0.15 (Debian 12) has no global --ksm: its vm buffers are made
# mergeable with --vm-madvise, and its madvise stressor and the random
# madvise() of every stressor's mappings toggle MADV_MERGEABLE themselves.
exec ./ksm_soak "${1:-0}" -- stress-ng --vm 2 --vm-bytes 32M \
	--vm-madvise mergeable --madvise 1 --verify --temp-path /tmp \
	--metrics-brief
