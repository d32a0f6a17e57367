// SPDX-License-Identifier: GPL-2.0
/*
 * Every KSM counter is exact for a known workload.  With use_zero_pages=1,
 * two processes A and B each map
 *   across[64]  the same contents in A and B   -> 64 KSM pages, 2 mappers
 *   within[32]  one content per process        -> 1 KSM page, 32 mappers
 *   zero[16]    zero-filled                    -> the zero page
 *   unique[32]  different everywhere           -> unshared
 * and the global counters (pages_shared, pages_sharing, pages_unshared,
 * pages_volatile, ksm_zero_pages, chains, general_profit), each process's
 * /proc/<pid>/ksm_stat and ksm_merging_pages, the KSM: line of its smaps
 * and the cow_ksm event must agree with that, after merging, after writes
 * that break some merges, and after one process exits; after both exit,
 * ksmd itself must bring every counter back to zero.
 */
#include "ktest.h"

#define NACROSS	64
#define NWITHIN	32
#define NZERO	16
#define NUNIQUE	32
#define NPAGES	(NACROSS + NWITHIN + NZERO + NUNIQUE)
#define ZERO0	(NACROSS + NWITHIN)
#define UNIQ0	(ZERO0 + NZERO)

/* A's writes in the write phase: 4 across, 1 within, 2 zero pages. */
#define WACROSS	4
#define WZERO	2

enum { CMD_STAT = KSM_AB_CMD, CMD_WRITE };

/* What one process should show. */
struct expect {
	long merging, zero, items, smaps_kb;
};

static struct {
	long smaps_kb[2], stat_merging[2], stat_zero[2], stat_items[2];
	long stat_profit[2], merge_any[2], mergeable[2];
} *sh;
static size_t ps;

static uint64_t seed_of(int who, int i)
{
	if (i < NACROSS)
		return 9000 + i;
	if (i < ZERO0)
		return 31337 * (who + 1);
	return 900001 * (who + 1) + i;
}

/* The zero pages are 0: faulted in, zero. */
static uint64_t content_of(int who, int i)
{
	if (i >= ZERO0 && i < UNIQ0)
		return 0;
	return seed_of(who, i);
}

static void stat_self(char *mem, int who)
{
	sh->smaps_kb[who] = kt_smaps_kb(mem, NPAGES * ps, "KSM");
	sh->stat_merging[who] = kt_ksm_stat(0, "ksm_merging_pages");
	sh->stat_zero[who] = kt_ksm_stat(0, "ksm_zero_pages");
	sh->stat_items[who] = kt_ksm_stat(0, "ksm_rmap_items");
	sh->stat_profit[who] = kt_ksm_stat(0, "ksm_process_profit");
	sh->merge_any[who] = kt_ksm_stat(0, "ksm_merge_any");
	sh->mergeable[who] = kt_ksm_stat(0, "ksm_mergeable");
}

/* A breaks some merges; every write makes a page unique. */
static void write_some(char *mem, char *shadow)
{
	int i;

	for (i = 0; i < WACROSS; i++)
		kt_poke(mem, shadow, i * ps + 8, 'a' + i);
	kt_poke(mem, shadow, NACROSS * ps + 8, 'w');
	for (i = 0; i < WZERO; i++)
		kt_poke(mem, shadow, (ZERO0 + i) * ps + 8, 'z' + i);
}

static void serve(struct ksm_ab *c, long cmd)
{
	if (cmd == CMD_STAT)
		stat_self(c->mem, c->who);
	if (cmd == CMD_WRITE)
		write_some(c->mem, c->shadow);
}

static const struct ksm_ab_ops ab = {
	.npages = NPAGES, .seed = content_of, .serve = serve,
};

static void check_global(const char *when, long shared, long sharing,
			 long unshared, long zero)
{
	ksm_expect(when, shared, sharing, unshared);
	ksm_print(when);
	kt_check(ksm_get("ksm_zero_pages") == zero,
		 "%s: ksm_zero_pages %ld (want %ld)", when,
		 ksm_get("ksm_zero_pages"), zero);
	kt_check(ksm_get("pages_volatile") == 0 &&
		 ksm_get("stable_node_chains") == 0 &&
		 ksm_get("stable_node_dups") == 0,
		 "%s: pages_volatile %ld, stable_node_chains %ld, "
		 "stable_node_dups %ld are 0", when, ksm_get("pages_volatile"),
		 ksm_get("stable_node_chains"), ksm_get("stable_node_dups"));
}

/*
 * The per-process files of @who agree with @e; returns the size of a
 * rmap item that ksm_process_profit implies (its only unknown).
 */
static long check_process(const char *when, struct kt_proc *kid, int who,
			  const struct expect *e)
{
	long merging = kt_merging_pages(kid->pid), cost, isz = -1;
	char c = "AB"[who];

	kt_ask(kid, CMD_STAT);
	kt_check(merging == e->merging && sh->stat_merging[who] == e->merging,
		 "%s: %c's ksm_merging_pages %ld, ksm_stat's %ld (want %ld)",
		 when, c, merging, sh->stat_merging[who], e->merging);
	kt_check(sh->stat_zero[who] == e->zero,
		 "%s: %c's ksm_stat ksm_zero_pages %ld (want %ld)", when, c,
		 sh->stat_zero[who], e->zero);
	kt_check(sh->stat_items[who] == e->items,
		 "%s: %c's ksm_stat ksm_rmap_items %ld (want %ld)", when, c,
		 sh->stat_items[who], e->items);
	kt_check(sh->smaps_kb[who] == e->smaps_kb,
		 "%s: %c's smaps KSM: %ld kB (want %ld)", when, c,
		 sh->smaps_kb[who], e->smaps_kb);
	cost = (e->merging + e->zero) * (long)ps - sh->stat_profit[who];
	if (e->items > 0 && cost > 0 && cost % e->items == 0)
		isz = cost / e->items;
	kt_check(isz > 0 && isz <= 256,
		 "%s: %c's ksm_process_profit %ld = (merging + zero pages) * "
		 "page size - %ld items * %ld bytes", when, c,
		 sh->stat_profit[who], e->items, isz);
	if (sh->merge_any[who] != -2)
		kt_check(sh->merge_any[who] == 0 && sh->mergeable[who] == 1,
			 "%s: %c's ksm_stat: ksm_merge_any no, ksm_mergeable yes",
			 when, c);
	return isz;
}

/* general_profit: pages saved minus the items of every process. */
static void check_profit(const char *when, long isz, long items)
{
	long saved = ksm_get("pages_sharing") + ksm_get("ksm_zero_pages");
	long want = saved * (long)ps - items * isz;

	kt_check(ksm_get("general_profit") == want,
		 "%s: general_profit %ld (want %ld = %ld pages * %zu - %ld "
		 "items * %ld)", when, ksm_get("general_profit"), want, saved,
		 ps, items, isz);
}

static void check_both(const char *when, struct kt_proc *kid,
		       const struct expect *e)
{
	long isz[2];
	int who;

	for (who = 0; who < 2; who++)
		isz[who] = check_process(when, &kid[who], who, &e[who]);
	kt_check(isz[0] == isz[1], "%s: A and B imply the same item size "
		 "(%ld, %ld)", when, isz[0], isz[1]);
	check_profit(when, isz[0], e[0].items + e[1].items);
	kt_check(kt_ask(&kid[0], KSM_AB_CHECK) == 0 &&
		 kt_ask(&kid[1], KSM_AB_CHECK) == 0,
		 "%s: A and B match their shadows", when);
}

static void expect_merged(struct expect *e)
{
	e->merging = NACROSS + NWITHIN;
	e->zero = NZERO;
	/* as in 6.12, no rmap item is kept for a page mapping the zero page */
	e->items = NPAGES - NZERO;
	e->smaps_kb = e->merging * ps / 1024;
}

/* After A's writes: A lost WACROSS + 1 merges and WZERO zero pages. */
static void expect_written(struct expect *e)
{
	e->merging -= WACROSS + 1;
	e->zero -= WZERO;
	e->items += WZERO;
	e->smaps_kb = e->merging * ps / 1024;
}

static void write_phase(struct kt_proc *kid, struct expect *e)
{
	long cow = kt_vmstat("cow_ksm");
	long w = WACROSS + 1 + WZERO;

	kt_ask(&kid[0], CMD_WRITE);
	kt_check(kt_vmstat("cow_ksm") - cow == WACROSS + 1,
		 "cow_ksm rose by %ld for A's %d writes to KSM pages "
		 "(writes to zero pages are not counted)",
		 kt_vmstat("cow_ksm") - cow, WACROSS + 1);
	/* a KSM page keeps counting in pages_shared while mapped once */
	check_global("after A's writes", NACROSS + 2,
		     NACROSS + 2 * (NWITHIN - 1) - WACROSS - 1,
		     2 * NUNIQUE + w, 2 * NZERO - WZERO);
	expect_written(&e[0]);
	check_both("after A's writes", kid, e);
}

/* B exits: A's pairs keep their KSM pages, B's own go away. */
static void exit_phase(struct kt_proc *kid, struct expect *e)
{
	long isz;

	kt_check(kt_finish(&kid[1]) == 0, "B exits cleanly");
	check_global("after B exited", NACROSS - WACROSS + 1, NWITHIN - 2,
		     NUNIQUE + WACROSS + 1 + WZERO, NZERO - WZERO);
	isz = check_process("after B exited", &kid[0], 0, &e[0]);
	check_profit("after B exited", isz, e[0].items);
	kt_check(kt_finish(&kid[0]) == 0, "A exits cleanly");
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
		 "after both exited, ksmd brings every counter back to 0");
	ksm_print("after both exited");
	kt_check(ksm_get("general_profit") == 0, "general_profit is 0");
}

int main(void)
{
	struct expect e[2];
	struct kt_proc kid[2];
	int who;

	ksm_begin();
	ps = kt_ps();
	sh = kt_shared(sizeof(*sh));
	kt_check(kt_ksm_stat(0, "ksm_rmap_items") == 0 &&
		 kt_ksm_stat(0, "ksm_merging_pages") == 0 &&
		 kt_ksm_stat(0, "ksm_process_profit") == 0 &&
		 kt_merging_pages(0) == 0,
		 "a process that never asked for KSM shows zeros in ksm_stat");
	ksm_must_set("use_zero_pages", 1);
	ksm_ab_start(kid, &ab);
	for (who = 0; who < 2; who++)
		expect_merged(&e[who]);
	ksm_go(1000, 10);
	check_global("merged", NACROSS + 2, NACROSS + 2 * (NWITHIN - 1),
		     2 * NUNIQUE, 2 * NZERO);
	check_both("merged", kid, e);
	write_phase(kid, e);
	exit_phase(kid, e);
	return kt_exit();
}
