// SPDX-License-Identifier: GPL-2.0
/*
 * KSM pages go to (zram) swap and come back intact.  A and B share 64 KSM
 * pages; B unmaps its copy (MADV_PAGEOUT only takes pages mapped once), so
 * that A can push the KSM pages out with MADV_PAGEOUT (reclaim through the
 * KSM rmap walk).  All must land in swap and read back equal to A's shadow
 * (a merged page must never be dropped as clean), a write after swap-in
 * must stay A's, and
 *  1. B maps the same contents again: ksmd merges them with A's swapped-in
 *     pages, exactly;
 *  2. run=2 while the KSM pages are in swap: A then reads them back
 *     intact and nothing is left merged.
 * (Pushing out KSM pages mapped twice, to see ksm_swpin_copy, is not
 * possible from user space here: MADV_PAGEOUT skips them and memcg reclaim
 * leaves them on the active list, on 6.12's own KSM as well.)
 */
#include "ktest.h"

#define NPAGES	64

enum { CMD_UNMAP = KSM_AB_CMD, CMD_MAP, CMD_PAGEOUT, CMD_SWAPPED,
	CMD_WRITE };

static size_t ps;
static struct {
	int swapped;
} *sh;

static uint64_t seed_of(int who, int i)
{
	return 8080 + i;
}

static void serve(struct ksm_ab *c, long cmd);

static const struct ksm_ab_ops ab = {
	.npages = NPAGES, .seed = seed_of, .serve = serve,
};

static void serve(struct ksm_ab *c, long cmd)
{
	int i;

	if (cmd == CMD_UNMAP && munmap(c->mem, NPAGES * ps))
		kt_die("munmap");
	if (cmd == CMD_MAP)
		ksm_ab_map(c, &ab, 0);
	if (cmd == CMD_PAGEOUT && madvise(c->mem, NPAGES * ps, MADV_PAGEOUT))
		kt_die("madvise(MADV_PAGEOUT)");
	if (cmd == CMD_SWAPPED)
		for (i = 0, sh->swapped = 0; i < NPAGES; i++)
			sh->swapped += kt_swapped(c->mem + i * ps);
	if (cmd == CMD_WRITE)
		kt_poke(c->mem, c->shadow, 3 * ps, 'w');
}

/* A and B merged, then A alone maps the KSM pages and pushes them out. */
static void swap_out(struct kt_proc *kid)
{
	long out = kt_vmstat("pswpout");

	ksm_ab_start(kid, &ab);
	ksm_expect("merged", NPAGES, NPAGES, 0);
	kt_ask(&kid[1], CMD_UNMAP);
	kt_ask(&kid[0], CMD_PAGEOUT);
	kt_ask(&kid[0], CMD_SWAPPED);
	ksm_print("after pageout");
	kt_check(sh->swapped == NPAGES,
		 "MADV_PAGEOUT swapped out %d of %d KSM pages", sh->swapped,
		 NPAGES);
	kt_check(kt_vmstat("pswpout") > out, "pswpout rose (by %ld)",
		 kt_vmstat("pswpout") - out);
}

/* A reads its pages back and writes one. */
static void swap_in(struct kt_proc *kid)
{
	long in = kt_vmstat("pswpin");

	kt_check(kt_ask(&kid[0], KSM_AB_CHECK) == 0,
		 "A reads them back equal to its shadow");
	kt_check(kt_vmstat("pswpin") > in, "pswpin rose");
	kt_ask(&kid[0], CMD_WRITE);
	kt_check(kt_ask(&kid[0], KSM_AB_CHECK) == 0,
		 "a write after swap-in lands, A matches its shadow");
}

static void stop(struct kt_proc *kid)
{
	ksm_ab_finish(kid);
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
		 "after both exited, ksmd brings every counter back to 0");
}

static void remerge(void)
{
	struct kt_proc kid[2];

	kt_note("part 1: swap out, swap in, merge again");
	swap_out(kid);
	swap_in(kid);
	kt_ask(&kid[1], CMD_MAP);
	/* A's written page 3 is unique now */
	ksm_expect("B mapped them again: merged with A's swapped-in pages",
		   NPAGES - 1, NPAGES - 1, 2);
	kt_check(kt_ask(&kid[0], KSM_AB_CHECK) == 0 &&
		 kt_ask(&kid[1], KSM_AB_CHECK) == 0, "both match their shadows");
	stop(kid);
}

static void unmerge_swapped(void)
{
	struct kt_proc kid[2];

	kt_note("part 2: run=2 while the KSM pages are in swap");
	swap_out(kid);
	kt_check(ksm_set("run", "2") == 0, "run=2 succeeds");
	ksm_check_zero("run=2 with the KSM pages in swap");
	swap_in(kid);
	ksm_must_set("run", 1);
	ksm_wait_scans(2, 300);
	kt_check(ksm_get("pages_shared") == 0 && ksm_get("pages_sharing") == 0,
		 "nothing is merged (A alone maps mergeable memory)");
	stop(kid);
}

int main(void)
{
	ksm_begin();
	if (kt_read_long("/sys/block/zram0/disksize") <= 0 ||
	    kt_vmstat("pswpin") < 0)
		kt_skip("no zram swap in this guest");
	ps = kt_ps();
	sh = kt_shared(sizeof(*sh));
	ksm_go(1000, 10);
	remerge();
	ksm_go(1000, 10);
	unmerge_swapped();
	return kt_exit();
}
