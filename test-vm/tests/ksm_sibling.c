// SPDX-License-Identifier: GPL-2.0
/*
 * The engine guesses that a page holds what the mm scanned just before
 * holds at the same address, and merges the pages that pass a look at
 * three of their cache lines in runs of one page-table round.  A page
 * that agrees with its guess there but differs elsewhere must still not
 * merge, and the pages around it must.
 *
 * Three children map NPAGES pages at one address, page i holding content
 * i in each.  In the third, every fourth page is a decoy: content i with
 * one byte changed in a cache line the look skips.  After the scans:
 *   - page i maps one frame in all three, a frame no other i maps;
 *   - a decoy maps a frame of its own;
 *   - 1 KSM page per i: NPAGES shared, 2 mappings more per i and 1 per
 *     decoy i sharing, the decoys unshared;
 *   - every child's memory equals its shadow copy, before and after
 *     writes to merged pages.
 */
#include "ktest.h"

#define NPAGES	128
#define NKIDS	3
#define AT	((char *)0x500000000000UL)

enum { CMD_EXIT, CMD_VERIFY, CMD_WRITE };

static size_t ps;

static int is_decoy(int kid, int i)
{
	return kid == NKIDS - 1 && i % 4 == 3;
}

/* A child: its memory, filled and mergeable; then answers commands. */
static void kid_main(struct kt_proc *self, int kid)
{
	char *mem, *shadow;
	long cmd;
	int i;

	mem = mmap(AT, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (mem != AT)
		kt_die("mmap at a fixed address");
	for (i = 0; i < NPAGES; i++) {
		kt_fill(mem + i * ps, ps, 7000 + i);
		/* never cache line 0, 32 or 63, which the look reads */
		if (is_decoy(kid, i))
			mem[i * ps + 64 * (1 + i % 30) + i % 64] ^= 0x5a;
	}
	shadow = kt_shadow(mem, NPAGES);
	if (madvise(mem, NPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	kt_put(self->up, 0);

	while ((cmd = kt_get(self->down)) > 0) {
		if (cmd == CMD_WRITE)
			for (i = kid; i < NPAGES; i += 5)
				kt_poke(mem, shadow, i * ps + 8 * kid, 'a' + kid);
		kt_put(self->up, kt_diff(mem, shadow, NPAGES, "child"));
	}
	_exit(0);
}

static int frames_as_built(struct kt_proc *kid)
{
	static uint64_t pfn[NKIDS][NPAGES];
	int k, i, bad = 0;

	for (k = 0; k < NKIDS; k++)
		kt_pfns_of(kid[k].pid, AT, NPAGES, pfn[k]);
	for (i = 0; i < NPAGES; i++) {
		int ok = pfn[0][i] && pfn[0][i] == pfn[1][i] &&
			 (is_decoy(2, i) ? pfn[2][i] && pfn[2][i] != pfn[0][i]
					 : pfn[2][i] == pfn[0][i]);

		if (!ok && bad++ < 5)
			kt_note("page %d: frames %#llx %#llx %#llx", i,
				(unsigned long long)pfn[0][i],
				(unsigned long long)pfn[1][i],
				(unsigned long long)pfn[2][i]);
	}
	if (kt_pfn_dups(pfn[0], NPAGES)) {
		kt_note("two contents share a frame");
		bad++;
	}
	return !bad;
}

int main(void)
{
	struct kt_proc kid[NKIDS];
	int k, decoys = NPAGES / 4, bad;

	ksm_begin();
	ps = kt_ps();
	k = kt_spawn_ready(kid, NKIDS);
	if (k >= 0)
		kid_main(&kid[k], k);

	ksm_go(1000, 10);
	kt_check(!ksm_wait_counts(NPAGES, 2 * (NPAGES - decoys) + decoys,
				  decoys, 3, 60),
		 "each content merged across the three, decoys left alone "
		 "(%d shared, %d sharing, %d unshared)", NPAGES,
		 2 * (NPAGES - decoys) + decoys, decoys);
	ksm_print("merged");
	ksm_wait_scans(2, 30);
	kt_check(frames_as_built(kid),
		 "page i on one frame in all three, decoys on frames of "
		 "their own");
	for (bad = 0, k = 0; k < NKIDS; k++)
		bad += kt_ask(&kid[k], CMD_VERIFY) != 0;
	kt_check(!bad, "every child's memory equals its shadow copy");

	/* Writes to merged pages copy, and only the writer sees them. */
	for (bad = 0, k = 0; k < NKIDS; k++)
		bad += kt_ask(&kid[k], CMD_WRITE) != 0;
	for (k = 0; k < NKIDS; k++)
		bad += kt_ask(&kid[k], CMD_VERIFY) != 0;
	kt_check(!bad, "after writes to merged pages: every child's memory "
		 "equals its shadow copy");

	for (k = 0; k < NKIDS; k++) {
		kt_put(kid[k].down, CMD_EXIT);
		kt_check(kt_finish(&kid[k]) == 0, "child %d exits cleanly", k);
	}
	return kt_exit();
}
