// SPDX-License-Identifier: GPL-2.0
/*
 * The documented behaviour of a kernel built without KSM: MADV_MERGEABLE
 * and MADV_UNMERGEABLE fail with EINVAL, PR_SET/GET_MEMORY_MERGE fail with
 * EINVAL, and neither /sys/kernel/mm/ksm nor /proc/<pid>/ksm_stat exist.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include "ktest.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

int main(void)
{
	size_t len = 16 * getpagesize();
	struct stat st;
	char *p;
	int r;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		kt_die("mmap");
	memset(p, 0x5a, len);

	r = madvise(p, len, MADV_MERGEABLE);
	kt_check(r == -1 && errno == EINVAL,
		 "madvise(MADV_MERGEABLE) fails with EINVAL (got %d, %s)",
		 r, strerror(errno));
	r = madvise(p, len, MADV_UNMERGEABLE);
	kt_check(r == -1 && errno == EINVAL,
		 "madvise(MADV_UNMERGEABLE) fails with EINVAL (got %d, %s)",
		 r, strerror(errno));
	r = prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0);
	kt_check(r == -1 && errno == EINVAL,
		 "prctl(PR_SET_MEMORY_MERGE) fails with EINVAL");
	r = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	kt_check(r == -1 && errno == EINVAL,
		 "prctl(PR_GET_MEMORY_MERGE) fails with EINVAL");
	kt_check(stat("/sys/kernel/mm/ksm", &st) == -1 && errno == ENOENT,
		 "/sys/kernel/mm/ksm is absent");
	kt_check(stat("/proc/self/ksm_stat", &st) == -1 && errno == ENOENT,
		 "/proc/self/ksm_stat is absent");
	kt_check(stat("/proc/self/ksm_merging_pages", &st) == -1,
		 "/proc/self/ksm_merging_pages is absent");
	kt_check(kt_vmstat("cow_ksm") == -1 && kt_vmstat("ksm_swpin_copy") == -1,
		 "no KSM events in /proc/vmstat");
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0x5a) {
			kt_check(0, "memory intact after the refused calls");
			break;
		}
	return kt_exit();
}
