// SPDX-License-Identifier: GPL-2.0
/*
 * Merging across two processes and within one, checked frame by frame.
 * Each of two unrelated processes A and B maps
 *   across[]  the same contents in A and B, pairwise -> one frame per pair
 *   within[]  one content repeated, its own per process -> one frame each
 *   unique[]  different everywhere                   -> never merged
 * Through /proc/self/pagemap, two pages (of A or B) must map the same
 * frame exactly when they were given the same content.  Every page is
 * compared with its process's own shadow copy after merging and after
 * private writes; each write to a merged page must copy (cow_ksm), land
 * in the writer's page only and leave the other mappers on the KSM page.
 * /proc/kpageflags must flag the KSM frames, and only those, KPF_KSM.
 */
#include "ktest.h"

#define NACROSS	128
#define NWITHIN	64
#define NUNIQUE	64
#define NPAGES	(NACROSS + NWITHIN + NUNIQUE)
#define NWRITE	10

enum { CMD_PFNS = KSM_AB_CMD, CMD_WRITE };

struct shared {
	uint64_t pfn[2][NPAGES];
};

static struct shared *sh;
static size_t ps;

/* Seed of page @i of process @who (0: A, 1: B): equal seeds, equal pages. */
static uint64_t seed_of(int who, int i)
{
	if (i < NACROSS)
		return 1000 + i;
	if (i < NACROSS + NWITHIN)
		return 77777 * (who + 1);
	return 1000003 * (who + 1) + i;
}

/* Pages of A and B that should share a frame; @x and @y index 2*NPAGES. */
static int same_class(int x, int y)
{
	return seed_of(x / NPAGES, x % NPAGES) == seed_of(y / NPAGES, y % NPAGES);
}

/* Page written by @who in the write phase: each writes other pages. */
static int written(int who, int i)
{
	if (i >= who * NWRITE && i < (who + 1) * NWRITE)
		return 1;			/* across: A 0..9, B 10..19 */
	return i == NACROSS + who;		/* one within page each */
}

static void serve(struct ksm_ab *c, long cmd)
{
	int i;

	switch (cmd) {
	case CMD_PFNS:
		kt_pfns(c->mem, NPAGES, sh->pfn[c->who]);
		break;
	case CMD_WRITE:
		for (i = 0; i < NPAGES; i++)
			if (written(c->who, i))
				kt_poke(c->mem, c->shadow, i * ps + 100 + c->who,
					c->mem[i * ps + 100 + c->who] ^ 0x5a);
		break;
	}
}

static const struct ksm_ab_ops ab = {
	.npages = NPAGES, .seed = seed_of, .serve = serve,
};

/* Pairs of pages whose frame sharing is not what their contents say. */
static int wrong_pairs(void)
{
	uint64_t *pfn = &sh->pfn[0][0];
	int x, y, bad = 0;

	for (x = 0; x < 2 * NPAGES; x++) {
		if (!pfn[x]) {
			bad++;
			continue;
		}
		for (y = x + 1; y < 2 * NPAGES; y++) {
			if ((pfn[x] == pfn[y]) == same_class(x, y))
				continue;
			if (!bad++)
				kt_note("%c page %d and %c page %d: frames %#lx %#lx",
					"AB"[x / NPAGES], x % NPAGES,
					"AB"[y / NPAGES], y % NPAGES,
					(long)pfn[x], (long)pfn[y]);
		}
	}
	return bad;
}

/*
 * Frames whose KPF_KSM flag says otherwise than their class: the across
 * and within pages are on KSM pages, the unique ones are ordinary
 * anonymous pages.  (The 6.12 base sets the flag on every anonymous
 * page; our series fixes fs/proc/page.c.)
 */
static int wrong_flags(void)
{
	int who, i, bad = 0;
	uint64_t flags;

	for (who = 0; who < 2; who++) {
		for (i = 0; i < NPAGES; i++) {
			flags = kt_kpageflags(sh->pfn[who][i]);
			if ((flags & KT_KPF_ANON) &&
			    !!(flags & KT_KPF_KSM) == (i < NACROSS + NWITHIN))
				continue;
			if (!bad++)
				kt_note("%c page %d: frame %#lx flags %#llx",
					"AB"[who], i, (long)sh->pfn[who][i],
					(unsigned long long)flags);
		}
	}
	return bad;
}

/* The write phase: each process writes its pages, cow_ksm counts them. */
static void write_phase(struct kt_proc *kid, struct shared *before)
{
	int who, i, moved, kept;
	long cow;

	for (who = 0; who < 2; who++) {
		cow = kt_vmstat("cow_ksm");
		kt_ask(&kid[who], CMD_WRITE);
		kt_check(kt_vmstat("cow_ksm") - cow == NWRITE + 1,
			 "%c's %d writes to merged pages made %ld copies (cow_ksm)",
			 "AB"[who], NWRITE + 1, kt_vmstat("cow_ksm") - cow);
	}
	kt_check(ksm_ab_ask(kid, KSM_AB_CHECK) == 0,
		 "after the writes, both match their shadows: no write leaked");
	ksm_ab_ask(kid, CMD_PFNS);
	for (who = 0, moved = kept = 0; who < 2; who++) {
		for (i = 0; i < NPAGES; i++) {
			if (written(who, i))
				moved += sh->pfn[who][i] != before->pfn[who][i];
			else
				kept += sh->pfn[who][i] == before->pfn[who][i];
		}
	}
	kt_check(moved == 2 * (NWRITE + 1),
		 "each written page got a frame of its own (%d of %d)",
		 moved, 2 * (NWRITE + 1));
	kt_check(kept == 2 * (NPAGES - NWRITE - 1),
		 "every other page kept its frame (%d of %d)",
		 kept, 2 * (NPAGES - NWRITE - 1));
}

int main(void)
{
	long shared = NACROSS + 2, sharing = NACROSS + 2 * (NWITHIN - 1);
	struct kt_proc kid[2];
	struct shared before;

	ksm_begin();
	ps = kt_ps();
	sh = kt_shared(sizeof(*sh));
	ksm_ab_start(kid, &ab);

	ksm_go(1000, 10);
	ksm_expect("merged", shared, sharing, 2 * NUNIQUE);
	ksm_print("merged");
	kt_check(ksm_ab_ask(kid, KSM_AB_CHECK) == 0,
		 "after merging, both match their shadows");
	ksm_ab_ask(kid, CMD_PFNS);
	kt_check(wrong_pairs() == 0,
		 "pages share a frame exactly when their contents are equal "
		 "(across, within, unique)");
	kt_check(wrong_flags() == 0,
		 "/proc/kpageflags has KPF_KSM on the merged frames only");
	before = *sh;

	write_phase(kid, &before);
	ksm_ab_finish(kid);
	return kt_exit();
}
