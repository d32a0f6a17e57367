// SPDX-License-Identifier: GPL-2.0
/*
 * The engine tries the KSM page of the last merge first, after a look at
 * three cache lines of the page (first, middle, last): a page that agrees
 * with it there but differs elsewhere must still not merge.
 *
 * One process maps NPAGES pages: the even ones all hold content X (a run
 * that merges into one KSM page, which becomes the guess), each odd one
 * is a decoy: X with one byte changed, in a cache line the look skips,
 * different for every decoy, so that it has nothing to merge with.  Every
 * decoy comes right after an X page, with the guess pointing at X.
 * After three full scans: the even pages map one frame, every decoy a
 * frame of its own, every page equals its shadow copy, and the counters
 * say 1 shared, NPAGES / 2 - 1 sharing, NPAGES / 2 unshared.  Writes to
 * the merged pages then copy as always.
 */
#include "ktest.h"

#define NPAGES	128

static size_t ps;
static char *mem, *shadow;

/* Decoy @i differs from X in cache line 1 + i % 30 (never 0, 32 or 63). */
static void make_decoy(char *page, int i)
{
	page[64 * (1 + i % 30) + (i % 64)] ^= (char)(1 + i);
}

static int frames_as_built(void)
{
	uint64_t pfn[NPAGES];
	int i, j, bad = 0;

	kt_pfns(mem, NPAGES, pfn);
	for (i = 0; i < NPAGES; i++) {
		if (!pfn[i]) {
			bad++;
			continue;
		}
		for (j = 0; j < i; j++) {
			int same = pfn[i] == pfn[j];
			int want = !(i & 1) && !(j & 1);

			if (same != want) {
				if (bad++ < 5)
					kt_note("pages %d and %d: frames %#llx %#llx",
						j, i, (unsigned long long)pfn[j],
						(unsigned long long)pfn[i]);
			}
		}
	}
	return !bad;
}

int main(void)
{
	int i;

	ksm_begin();
	ps = kt_ps();
	mem = kt_map(NPAGES);
	kt_fill(mem, ps, 4242);
	for (i = 1; i < NPAGES; i++) {
		memcpy(mem + i * ps, mem, ps);
		if (i & 1)
			make_decoy(mem + i * ps, i);
	}
	shadow = kt_shadow(mem, NPAGES);
	if (madvise(mem, NPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	ksm_go(1000, 10);
	kt_check(!ksm_wait_counts(1, NPAGES / 2 - 1, NPAGES / 2, 3, 60),
		 "X pages merged into one KSM page, decoys left alone "
		 "(1 shared, %d sharing, %d unshared)", NPAGES / 2 - 1,
		 NPAGES / 2);
	ksm_print("merged");
	ksm_wait_scans(2, 30);
	kt_check(frames_as_built(),
		 "even pages on one frame, every decoy on a frame of its own");
	kt_check(!kt_diff(mem, shadow, NPAGES, "merged"),
		 "every page equals its shadow copy");

	/* Writes to merged pages copy, and only the writer sees them. */
	for (i = 0; i < NPAGES; i += 8)
		kt_poke(mem, shadow, i * ps + 100, 'w');
	kt_check(!kt_diff(mem, shadow, NPAGES, "written"),
		 "after writes to merged pages: every page equals its shadow");
	return kt_exit();
}
