// SPDX-License-Identifier: GPL-2.0
/*
 * Zero pages and chains, with use_zero_pages=1 and max_page_sharing=8.
 * One process maps
 *   chain[64]   one content                -> 8 KSM pages of 8 mappings,
 *                                             one chain of 8 dups
 *   pairs[64]   32 contents, twice each    -> 32 KSM pages
 *   zero[64]    zero-filled                -> the shared zero page
 *   unique[64]  different                  -> unshared
 * Counters, chains and dups must be exact, frames must show that layout,
 * max_page_sharing must refuse to change while KSM pages exist, writes to
 * and munmap of zero pages must lower ksm_zero_pages at once, and
 * MADV_UNMERGEABLE and run=2 must give the zero pages and every other
 * page their own frames back with their contents.
 */
#include "ktest.h"

#define N	64
#define CHAIN0	0
#define PAIRS0	N
#define ZERO0	(2 * N)
#define UNIQ0	(3 * N)
#define NPAGES	(4 * N)
#define MPS	8

static size_t ps;
static char *mem, *shadow;
static uint64_t pfn[NPAGES], zero_pfn;

static void populate(void)
{
	int i;

	for (i = 0; i < N; i++) {
		memset(mem + (CHAIN0 + i) * ps, 0x5a, ps);
		kt_fill(mem + (PAIRS0 + i) * ps, ps, 7000 + i % (N / 2));
		memset(mem + (ZERO0 + i) * ps, 0, ps);
		kt_fill(mem + (UNIQ0 + i) * ps, ps, 90000 + i);
	}
	shadow = kt_shadow(mem, NPAGES);
}

/* The frame of the shared zero page: what a read fault maps. */
static uint64_t find_zero_pfn(void)
{
	volatile char *p = kt_map(1);
	uint64_t f;

	(void)p[0];
	f = kt_pfn((void *)p);
	munmap((void *)p, ps);
	return f;
}

/* Frames used by the chain pages, and how many pages map each. */
static void check_chain_frames(void)
{
	uint64_t frames[N];
	int count[N] = { 0 }, nf = 0, i, j, bad = 0;

	for (i = CHAIN0; i < CHAIN0 + N; i++) {
		for (j = 0; j < nf && frames[j] != pfn[i]; j++)
			;
		if (j == nf)
			frames[nf++] = pfn[i];
		count[j]++;
	}
	for (j = 0; j < nf; j++)
		bad += count[j] != MPS || !frames[j] || frames[j] == zero_pfn;
	kt_check(nf == N / MPS && !bad,
		 "the %d chain pages map %d frames of %d pages each (%d frames)",
		 N, N / MPS, MPS, nf);
}

static void check_frames(void)
{
	int i, bad = 0;

	kt_pfns(mem, NPAGES, pfn);
	check_chain_frames();
	for (i = 0; i < N / 2; i++)
		bad += !pfn[PAIRS0 + i] || pfn[PAIRS0 + i] != pfn[PAIRS0 + i + N / 2];
	kt_check(!bad, "each pair maps one frame (%d pairs do not)", bad);
	for (i = 0, bad = 0; i < N; i++)
		bad += pfn[ZERO0 + i] != zero_pfn;
	kt_check(!bad && zero_pfn, "every zero page maps the zero page "
		 "(frame %#lx; %d do not)", (long)zero_pfn, bad);
	kt_check(kt_pfn_dups(pfn + UNIQ0, N) == 0 &&
		 kt_pfn_dups(pfn + PAIRS0, N / 2) == 0,
		 "unique pages and distinct pairs keep distinct frames");
}

static void check_merged(void)
{
	long shared = N / MPS + N / 2, sharing = N - N / MPS + N / 2;

	ksm_expect("merged", shared, sharing, N);
	ksm_print("merged");
	kt_check(ksm_get("stable_node_chains") == 1 &&
		 ksm_get("stable_node_dups") == N / MPS,
		 "stable_node_chains %ld (want 1), stable_node_dups %ld (want %d)",
		 ksm_get("stable_node_chains"), ksm_get("stable_node_dups"),
		 N / MPS);
	kt_check(ksm_get("ksm_zero_pages") == N &&
		 kt_ksm_stat(0, "ksm_zero_pages") == N,
		 "ksm_zero_pages %ld, ksm_stat's %ld (want %d)",
		 ksm_get("ksm_zero_pages"), kt_ksm_stat(0, "ksm_zero_pages"), N);
	kt_check(kt_ksm_stat(0, "ksm_merging_pages") == 2 * N,
		 "ksm_merging_pages %ld (want %d: zero pages not included)",
		 kt_ksm_stat(0, "ksm_merging_pages"), 2 * N);
	check_frames();
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "memory matches its shadow");
}

static void check_knobs_busy(void)
{
	kt_check(ksm_set("max_page_sharing", "16") == -EBUSY &&
		 ksm_get("max_page_sharing") == MPS,
		 "max_page_sharing refuses 16 with EBUSY while KSM pages exist");
	kt_check(ksm_set("max_page_sharing", "8") == 0,
		 "max_page_sharing takes its current value");
	kt_check(ksm_set("run", "3") == -EINVAL && ksm_get("run") == 1,
		 "run refuses 3 with EINVAL");
}

/* Writes and munmap of zero pages lower ksm_zero_pages at once. */
static void check_zero_changes(void)
{
	int i;

	for (i = 0; i < 4; i++)
		kt_poke(mem, shadow, (ZERO0 + i) * ps + 64 * i, 1 + i);
	kt_check(ksm_get("ksm_zero_pages") == N - 4 &&
		 kt_ksm_stat(0, "ksm_zero_pages") == N - 4,
		 "4 writes to zero pages: ksm_zero_pages %ld, ksm_stat's %ld "
		 "(want %d)", ksm_get("ksm_zero_pages"),
		 kt_ksm_stat(0, "ksm_zero_pages"), N - 4);
	for (i = 0; i < 4; i++)
		kt_check(kt_pfn(mem + (ZERO0 + i) * ps) != zero_pfn,
			 "written zero page %d has a frame of its own", i);
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "memory matches its shadow after the writes");
	if (munmap(mem + (ZERO0 + N - 16) * ps, 16 * ps))
		kt_die("munmap");
	kt_check(ksm_get("ksm_zero_pages") == N - 20 &&
		 kt_ksm_stat(0, "ksm_zero_pages") == N - 20,
		 "munmap of 16 zero pages: ksm_zero_pages %ld, ksm_stat's %ld "
		 "(want %d)", ksm_get("ksm_zero_pages"),
		 kt_ksm_stat(0, "ksm_zero_pages"), N - 20);
}

/* MADV_UNMERGEABLE on what is left of the zero range. */
static void check_zero_unmerge(void)
{
	char *z = mem + (ZERO0 + 4) * ps;
	int n = N - 20, i, bad = 0;

	kt_check(madvise(z, n * ps, MADV_UNMERGEABLE) == 0,
		 "MADV_UNMERGEABLE on the zero pages");
	kt_check(ksm_get("ksm_zero_pages") == 0 &&
		 kt_ksm_stat(0, "ksm_zero_pages") == 0,
		 "ksm_zero_pages %ld, ksm_stat's %ld (want 0)",
		 ksm_get("ksm_zero_pages"), kt_ksm_stat(0, "ksm_zero_pages"));
	kt_pfns(z, n, pfn);
	for (i = 0; i < n; i++)
		bad += pfn[i] == zero_pfn;
	kt_check(!bad && kt_pfn_dups(pfn, n) == 0,
		 "each unmerged zero page has a frame of its own (%d do not)",
		 bad);
	kt_check(kt_diff(mem, shadow, ZERO0 + N - 16, "memory") == 0 &&
		 kt_diff(mem + UNIQ0 * ps, shadow + UNIQ0 * ps, N, "memory") == 0,
		 "memory matches its shadow");
}

static void check_run2(void)
{
	int i, bad = 0;

	kt_check(ksm_set("run", "2") == 0, "run=2 succeeds");
	ksm_print("after run=2");
	ksm_check_zero("right after run=2");
	kt_pfns(mem, ZERO0, pfn);
	kt_check(kt_pfn_dups(pfn, ZERO0) == 0,
		 "run=2 gave each chain and pair page a frame of its own");
	for (i = UNIQ0; i < NPAGES; i++)
		bad += kt_pfn(mem + i * ps) == 0;
	kt_check(kt_diff(mem, shadow, ZERO0 + N - 16, "memory") == 0 &&
		 kt_diff(mem + UNIQ0 * ps, shadow + UNIQ0 * ps, N, "memory") == 0
		 && !bad, "memory matches its shadow");
	kt_check(kt_ksm_stat(0, "ksm_merging_pages") == 0 &&
		 kt_ksm_stat(0, "ksm_rmap_items") == 0,
		 "ksm_stat: ksm_merging_pages %ld and ksm_rmap_items %ld are 0",
		 kt_ksm_stat(0, "ksm_merging_pages"),
		 kt_ksm_stat(0, "ksm_rmap_items"));
	kt_check(ksm_set("max_page_sharing", "16") == 0 &&
		 ksm_get("max_page_sharing") == 16,
		 "with nothing merged, max_page_sharing takes 16");
}

int main(void)
{
	ksm_begin();
	ps = kt_ps();
	zero_pfn = find_zero_pfn();
	mem = kt_map(NPAGES);
	populate();
	ksm_must_set("use_zero_pages", 1);
	ksm_must_set("max_page_sharing", MPS);
	ksm_must_set("smart_scan", 0);
	if (madvise(mem, NPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	ksm_go(1000, 10);
	check_merged();
	check_knobs_busy();
	check_zero_changes();
	check_zero_unmerge();
	check_run2();
	return kt_exit();
}
