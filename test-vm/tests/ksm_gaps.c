// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_gaps: ksmd forgets the pages that left the holes between the pages
 * it finds.  A mergeable 16 GiB MAP_NORESERVE mapping holds NPAGES pages,
 * one every 256 MiB (each under page tables of its own, the gaps wider
 * than a node of the xarray of items), the first half in pairs of equal
 * content, the rest unique.  Once ksmd has an item for each
 * (ksm_stat's ksm_rmap_items) and the pairs merged, every odd page is
 * dropped with MADV_DONTNEED and a stretch of the mapping is unmapped.
 * Two full scans later ksm_rmap_items counts the pages left and no more,
 * the merged ones among them are still merged, and every page reads as
 * its shadow (or zero, where it was dropped).
 */
#include "ktest.h"

#define NPAGES	64
#define NPAIRED	32
#define STRIDE	(256UL << 20)
#define UNMAP0	48		/* pages UNMAP0 .. UNMAP1 - 1 are unmapped */
#define UNMAP1	56

static size_t ps;
static char *mem, *shadow;

static uint64_t seed_of(int i)
{
	return i < NPAIRED ? 4400 + i / 2 : 880000 + i;
}

static char *page_at(int i)
{
	return mem + i * STRIDE;
}

static int gone(int i)
{
	return (i & 1) || (i >= UNMAP0 && i < UNMAP1);
}

/* What is left: items (one per page present) and merged pages. */
static long left(void)
{
	long n = 0;
	int i;

	for (i = 0; i < NPAGES; i++)
		n += !gone(i);
	return n;
}

static int all_seen(void *arg)
{
	(void)arg;
	return kt_ksm_stat(0, "ksm_rmap_items") == NPAGES &&
	       kt_merging_pages(0) == NPAIRED;
}

static int items_left(void *arg)
{
	(void)arg;
	return kt_ksm_stat(0, "ksm_rmap_items") == left();
}

/* Pages that differ from their shadow; dropped ones must read zero. */
static int bad_pages(void)
{
	static const char zero[4096];
	int i, bad = 0;

	for (i = 0; i < NPAGES; i++) {
		if (i >= UNMAP0 && i < UNMAP1)
			continue;
		if (i & 1)
			bad += memcmp(page_at(i), zero, ps) != 0;
		else
			bad += memcmp(page_at(i), shadow + i * ps, ps) != 0;
	}
	return bad;
}

int main(void)
{
	int i, merged, ret;

	ksm_begin();
	ps = kt_ps();
	if (ps > 4096)
		return KT_SKIP;
	mem = mmap(NULL, NPAGES * STRIDE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		kt_die("mmap of 16 GiB");
	shadow = kt_map(NPAGES);
	madvise(mem, NPAGES * STRIDE, MADV_NOHUGEPAGE);
	for (i = 0; i < NPAGES; i++) {
		kt_fill(page_at(i), ps, seed_of(i));
		kt_fill(shadow + i * ps, ps, seed_of(i));
	}
	if (madvise(mem, NPAGES * STRIDE, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");

	ksm_go(1000, 10);
	/* (the wait comes first: the message reads the counts after it) */
	ret = ksm_wait_for(all_seen, NULL, 4, 120);
	kt_check(ret == 0,
		 "an item for each of the %d pages (%ld), %d of them merged (%ld)",
		 NPAGES, kt_ksm_stat(0, "ksm_rmap_items"), NPAIRED,
		 kt_merging_pages(0));

	for (i = 1; i < NPAGES; i += 2)
		if (madvise(page_at(i), ps, MADV_DONTNEED))
			kt_die("MADV_DONTNEED");
	if (munmap(page_at(UNMAP0), (UNMAP1 - UNMAP0) * STRIDE))
		kt_die("munmap");
	ret = ksm_wait_for(items_left, NULL, 4, 120);
	kt_check(ret == 0,
		 "after the drops, ksm_rmap_items counts the %ld pages left (%ld)",
		 left(), kt_ksm_stat(0, "ksm_rmap_items"));
	ret = ksm_wait_scans(2, 120);
	kt_check(ret == 0 && items_left(NULL),
		 "and still does two full scans later (%ld)",
		 kt_ksm_stat(0, "ksm_rmap_items"));
	merged = 0;
	for (i = 0; i < NPAIRED; i += 2)
		merged += !!(kt_kpageflags(kt_pfn(page_at(i))) &
			     KT_KPF_KSM);
	kt_check(merged == NPAIRED / 2,
		 "the %d pages left of the merged pairs are still KSM pages (%d)",
		 NPAIRED / 2, merged);
	kt_check(bad_pages() == 0,
		 "every page reads as its shadow, or zero where it was dropped");

	munmap(mem, NPAGES * STRIDE);
	munmap(shadow, NPAGES * ps);
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 120) == 0,
		 "ksmd brings every counter back to 0");
	return kt_exit();
}
