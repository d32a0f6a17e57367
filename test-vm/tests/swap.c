// SPDX-License-Identifier: GPL-2.0
/*
 * The guest's zram swap works: pages pushed out with MADV_PAGEOUT land in
 * swap (pagemap says so, pswpout rises) and come back with their content.
 */
#include "ktest.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

int main(void)
{
	size_t ps = getpagesize(), n = 4096, i, swapped = 0, bad = 0;
	long out0 = kt_vmstat("pswpout");
	char *p;

	if (kt_read_long("/sys/block/zram0/disksize") <= 0)
		kt_skip("no zram swap in this guest");
	p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		kt_die("mmap");
	for (i = 0; i < n; i++)
		kt_fill(p + i * ps, ps, i + 1);
	if (madvise(p, n * ps, MADV_PAGEOUT))
		kt_die("madvise(MADV_PAGEOUT)");
	for (i = 0; i < n; i++)
		swapped += kt_swapped(p + i * ps);
	kt_check(swapped > n / 2, "%zu of %zu pages are in swap", swapped, n);
	kt_check(kt_vmstat("pswpout") > out0, "pswpout rose");
	for (i = 0; i < n; i++) {
		static char want[65536];

		kt_fill(want, ps, i + 1);
		bad += !!memcmp(want, p + i * ps, ps);
	}
	kt_check(bad == 0, "all pages read back intact (%zu differ)", bad);
	return kt_exit();
}
