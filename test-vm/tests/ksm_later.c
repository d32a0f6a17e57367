// SPDX-License-Identifier: GPL-2.0
/*
 * Interfaces that kernels after 6.12 added or fixed, kept compatible
 * with 6.12's:
 *
 *   ksm_later stat       /proc/<pid>/ksm_stat keeps its four 6.12 lines
 *                        first and adds ksm_merge_any and ksm_mergeable,
 *                        which follow madvise, the prctl and fork
 *   ksm_later vma-merge  under PR_SET_MEMORY_MERGE a new mapping is
 *                        mergeable as it is made, so it merges with its
 *                        mergeable neighbour into one VMA, and brk()
 *                        grows the heap instead of adding a VMA per call
 */
#include "ktest.h"

static size_t ps;

/* The first @n field names of /proc/<pid>/ksm_stat, colons dropped. */
static int stat_fields(pid_t pid, char names[][32], int n)
{
	char path[64], line[128];
	int i = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid ? pid : getpid());
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (i < n && fgets(line, sizeof(line), f)) {
		line[strcspn(line, " :\n")] = 0;
		snprintf(names[i++], sizeof(names[0]), "%.31s", line);
	}
	fclose(f);
	return i;
}

/* Whether @pid's ksm_merge_any and ksm_mergeable read @any and @able. */
static void stat_says(pid_t pid, int any, int able, const char *when)
{
	long a = kt_ksm_stat(pid, "ksm_merge_any");
	long m = kt_ksm_stat(pid, "ksm_mergeable");

	kt_check(a == any && m == able,
		 "%s: ksm_merge_any %s, ksm_mergeable %s (read %ld, %ld)",
		 when, any ? "yes" : "no", able ? "yes" : "no", a, m);
}

static int stat_lines(void)
{
	static const char *const v612[] = {
		"ksm_rmap_items", "ksm_zero_pages", "ksm_merging_pages",
		"ksm_process_profit",
	};
	char names[8][32];
	int n, i, ok = 1, fd[2];
	pid_t kid;
	char *p, c;

	n = stat_fields(0, names, 8);
	for (i = 0; i < 4; i++)
		ok &= i < n && !strcmp(names[i], v612[i]);
	kt_check(ok && n == 6 && !strcmp(names[4], "ksm_merge_any") &&
		 !strcmp(names[5], "ksm_mergeable"),
		 "ksm_stat: the four lines of 6.12 in their order, then "
		 "ksm_merge_any and ksm_mergeable (%d lines)", n);

	stat_says(0, 0, 0, "a new process");
	p = kt_map(8);
	p[0] = 1;
	if (madvise(p, 8 * ps, MADV_MERGEABLE))
		kt_die("madvise");
	stat_says(0, 0, 1, "after MADV_MERGEABLE");
	if (madvise(p, 8 * ps, MADV_UNMERGEABLE))
		kt_die("madvise");
	stat_says(0, 0, 0, "after MADV_UNMERGEABLE");
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		kt_die("PR_SET_MEMORY_MERGE");
	stat_says(0, 1, 1, "after PR_SET_MEMORY_MERGE 1");

	if (pipe(fd))
		kt_die("pipe");
	kid = kt_fork();
	if (!kid) {
		kt_who = "child: ";
		stat_says(0, 1, 1, "after fork, in the child");
		close(fd[1]);
		if (read(fd[0], &c, 1) < 0)
			_exit(KT_FAIL);
		kt_child_exit();
	}
	close(fd[0]);
	stat_says(kid, 1, 1, "after fork, the child seen by its parent");
	close(fd[1]);
	kt_check(kt_join(kid) == 0, "the child's own checks");

	if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0))
		kt_die("PR_SET_MEMORY_MERGE 0");
	stat_says(0, 0, 0, "after PR_SET_MEMORY_MERGE 0");
	munmap(p, 8 * ps);
	return kt_exit();
}

/* VMAs of /proc/self/maps that overlap [@a, @a + @len). */
static int vmas_in(const void *a, size_t len)
{
	unsigned long lo, hi, s = (uintptr_t)a, e = s + len;
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && lo < e && hi > s)
			n++;
	if (f)
		fclose(f);
	return n;
}

#define AT1	((char *)0x5d0000000000UL)
#define AT2	((char *)0x5d0000100000UL)

/* Two mappings of 8 pages at @at, one after the other. */
static char *two_maps(char *at)
{
	kt_map_at(at, 8);
	kt_map_at(at + 8 * ps, 8);
	return at;
}

/* Whether the 16 pages at @arg map one KSM page. */
static int one_ksm_frame(void *arg)
{
	uint64_t pfn[16];
	int i;

	kt_pfns(arg, 16, pfn);
	for (i = 0; i < 16; i++)
		if (!pfn[i] || pfn[i] != pfn[0])
			return 0;
	return !!(kt_kpageflags(pfn[0]) & KT_KPF_KSM);
}

static int vma_merge(void)
{
	char *p, *heap0, *heap;
	int i, n;

	/* The count works: plain neighbours are one VMA, unequal two. */
	p = two_maps(AT1);
	n = vmas_in(p, 16 * ps);
	if (madvise(p, 8 * ps, MADV_MERGEABLE))
		kt_die("madvise");
	kt_check(n == 1 && vmas_in(p, 16 * ps) == 2,
		 "without the prctl: neighbours are %d VMA, %d once one of "
		 "them is mergeable", n, vmas_in(p, 16 * ps));

	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		kt_die("PR_SET_MEMORY_MERGE");
	p = two_maps(AT2);
	n = vmas_in(p, 16 * ps);
	kt_check(n == 1 && kt_vma_has_flag(p, 16 * ps, "mg"),
		 "under PR_SET_MEMORY_MERGE two new neighbours are one "
		 "mergeable VMA (%d)", n);

	heap0 = sbrk(0);
	for (i = 0; i < 16; i++) {
		heap = sbrk(ps);
		if (heap == (void *)-1)
			kt_die("sbrk");
		heap[0] = 1;
	}
	heap = sbrk(0);
	n = vmas_in(heap0, heap - heap0);
	kt_check(n == 1 && kt_vma_has_flag(heap0, heap - heap0, "mg"),
		 "16 brk() calls under PR_SET_MEMORY_MERGE leave one "
		 "mergeable heap VMA (%d)", n);

	/*
	 * And the one VMA merges: 16 equal pages.  The whole process is
	 * mergeable now (its heap and stack too), so the global counters
	 * are not exact: the frames tell.
	 */
	for (i = 0; i < 16; i++)
		kt_fill(p + i * ps, ps, 0x1a7e5);
	ksm_go(1000, 0);
	kt_check(!ksm_wait_for(one_ksm_frame, p, 10, 300),
		 "the 16 equal pages of the two mmap()s are one KSM page");
	if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0))
		kt_die("PR_SET_MEMORY_MERGE 0");
	return kt_exit();
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";

	ksm_begin();
	ps = kt_ps();
	if (!strcmp(what, "stat"))
		return stat_lines();
	if (!strcmp(what, "vma-merge"))
		return vma_merge();
	kt_die("usage: ksm_later stat|vma-merge");
}
