// SPDX-License-Identifier: GPL-2.0
/*
 * fill MIB SEED [ZERO% [thp]]: map MIB MiB of anonymous memory, fill it
 * with pages derived from SEED (ZERO% of them left zero-filled), register
 * it with MADV_MERGEABLE, say "ready" and wait to be killed.  Processes
 * given the same SEED hold identical memory.  "thp" asks for huge pages
 * first (MADV_HUGEPAGE): a fault per 2 MiB instead of per page, which is
 * what makes a GiB fill affordable on the debug kernel.
 */
#include <signal.h>
#include "ktest.h"

int main(int argc, char **argv)
{
	size_t ps = getpagesize(), mib, n, i;
	unsigned long seed;
	int zero_pct;
	char *p;

	if (argc < 3)
		return KT_FAIL;
	mib = strtoul(argv[1], NULL, 0);
	seed = strtoul(argv[2], NULL, 0);
	zero_pct = argc > 3 ? atoi(argv[3]) : 0;
	n = mib * 1024 * 1024 / ps;
	p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		kt_die("mmap");
	if (argc > 4 && !strcmp(argv[4], "thp") &&
	    madvise(p, n * ps, MADV_HUGEPAGE))
		kt_die("madvise(MADV_HUGEPAGE)");
	for (i = 0; i < n; i++) {
		if ((int)(i % 100) < zero_pct)
			p[i * ps] = 0;	/* fault it in, keep it zero */
		else
			kt_fill(p + i * ps, ps, seed * 1000003 + i + 1);
	}
	if (madvise(p, n * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
