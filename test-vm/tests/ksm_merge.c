// SPDX-License-Identifier: GPL-2.0
/*
 * Merging across two processes and within one, checked page by page:
 *   shared[]  identical in parent and child, pairwise   -> merged across
 *   inproc[]  one content repeated inside each process  -> merged within
 *   unique[]  different everywhere                      -> never merged
 * Each process checks its memory against its own shadow copy after the
 * merge and after private writes; frames are compared through pagemap;
 * counters must be exact, and zero after run=2.
 */
#include <signal.h>
#include <sys/wait.h>
#include "ktest.h"

#define NSHARED	128
#define NINPROC	64
#define NUNIQUE	64
#define NPAGES	(NSHARED + NINPROC + NUNIQUE)
#define NWRITE	10

static size_t ps;
static char *mem, *shadow;

static char *page(int i) { return mem + (size_t)i * ps; }

static void populate(unsigned long who)
{
	int i;

	for (i = 0; i < NSHARED; i++)
		kt_fill(page(i), ps, 1000 + i);
	for (i = 0; i < NINPROC; i++)
		kt_fill(page(NSHARED + i), ps, 77777 * who);
	for (i = 0; i < NUNIQUE; i++)
		kt_fill(page(NSHARED + NINPROC + i), ps, who * 1000003 + i + 5);
	memcpy(shadow, mem, NPAGES * ps);
	if (madvise(mem, NPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
}

static int matches_shadow(void)
{
	int i, bad = 0;

	for (i = 0; i < NPAGES; i++)
		bad += !!memcmp(page(i), shadow + (size_t)i * ps, ps);
	return bad;
}

static long smaps_ksm_kb(void)
{
	char line[256];
	long kb, sum = 0, in = 0;
	unsigned long lo, hi;
	FILE *f = fopen("/proc/self/smaps", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = lo == (unsigned long)mem;
		else if (in && sscanf(line, "KSM: %ld kB", &kb) == 1)
			sum += kb;
	}
	if (f)
		fclose(f);
	return sum;
}

static int wait_counters(long shared, long sharing, int seconds)
{
	int i;

	for (i = 0; i < seconds * 10; i++) {
		if (ksm_get("pages_shared") == shared &&
		    ksm_get("pages_sharing") == sharing)
			return 0;
		usleep(100000);
	}
	return -1;
}

int main(void)
{
	int to_child[2], to_parent[2], status, i, bad;
	uint64_t pfn_child[NSHARED], pfn;
	long cow0;
	char c;
	pid_t pid;

	ksm_require();
	ps = getpagesize();
	mem = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shadow = malloc(NPAGES * ps);
	if (mem == MAP_FAILED || !shadow || pipe(to_child) || pipe(to_parent))
		kt_die("setup");
	ksm_set("run", "2");
	ksm_set("pages_to_scan", "1000");
	ksm_set("sleep_millisecs", "10");

	pid = fork();
	if (!pid) {
		populate(2);
		if (write(to_parent[1], "r", 1) != 1 ||
		    read(to_child[0], &c, 1) != 1)	/* merged */
			_exit(1);
		for (i = 0; i < NSHARED; i++)
			pfn_child[i] = kt_pfn(page(i));
		bad = matches_shadow();
		/* private writes: must stay private */
		cow0 = kt_vmstat("cow_ksm");
		for (i = 0; i < NWRITE; i++) {
			page(i)[7] ^= 0xff;
			shadow[(size_t)i * ps + 7] ^= 0xff;
		}
		page(NSHARED)[9] ^= 0xff;
		shadow[(size_t)NSHARED * ps + 9] ^= 0xff;
		bad += matches_shadow();
		bad += kt_vmstat("cow_ksm") - cow0 != NWRITE + 1;
		if (write(to_parent[1], pfn_child, sizeof(pfn_child)) !=
		    sizeof(pfn_child) || write(to_parent[1], &bad, sizeof(bad)) !=
		    sizeof(bad) || read(to_child[0], &c, 1) != 1)
			_exit(1);
		bad = matches_shadow();
		_exit(bad ? 1 : 0);
	}
	populate(1);
	if (read(to_parent[0], &c, 1) != 1)
		kt_die("child setup");
	ksm_set("run", "1");
	/* across: NSHARED pages with 2 mappers; within: 2 pages x NINPROC */
	kt_check(wait_counters(NSHARED + 2, NSHARED + 2 * (NINPROC - 1), 120) == 0,
		 "pages_shared %ld (want %d), pages_sharing %ld (want %d)",
		 ksm_get("pages_shared"), NSHARED + 2, ksm_get("pages_sharing"),
		 NSHARED + 2 * (NINPROC - 1));
	kt_check(kt_read_long("/proc/self/ksm_merging_pages") == NSHARED + NINPROC,
		 "ksm_merging_pages is %ld (want %d)",
		 kt_read_long("/proc/self/ksm_merging_pages"), NSHARED + NINPROC);
	kt_check(smaps_ksm_kb() == (NSHARED + NINPROC) * (long)ps / 1024,
		 "smaps KSM: %ld kB", smaps_ksm_kb());
	kt_check(matches_shadow() == 0, "parent's pages match its shadow after merging");
	ksm_set("run", "0");	/* freeze the picture */
	if (write(to_child[1], "m", 1) != 1 ||
	    read(to_parent[0], pfn_child, sizeof(pfn_child)) != sizeof(pfn_child) ||
	    read(to_parent[0], &bad, sizeof(bad)) != sizeof(bad))
		kt_die("child report");
	kt_check(bad == 0, "child's pages match its shadow, before and after its writes, "
		 "and each write copied (cow_ksm)");
	for (i = 0, bad = 0; i < NSHARED; i++)
		bad += kt_pfn(page(i)) != pfn_child[i] || !pfn_child[i];
	kt_check(bad == 0, "every shared page maps the same frame in both (%d differ)", bad);
	pfn = kt_pfn(page(NSHARED));
	for (i = 1, bad = 0; i < NINPROC; i++)
		bad += kt_pfn(page(NSHARED + i)) != pfn;
	kt_check(bad == 0, "repeated pages share one frame in the process");
	for (i = 0, bad = 0; i < NUNIQUE; i++)
		bad += kt_pfn(page(NSHARED + NINPROC + i)) == pfn;
	kt_check(bad == 0, "unique pages keep their own frames");
	kt_check(matches_shadow() == 0, "the child's writes are not visible to the parent");
	kt_check(ksm_set("max_page_sharing", "100") == -EBUSY,
		 "max_page_sharing cannot change while KSM pages exist");
	if (!access(KSM_DIR "merge_across_nodes", F_OK))
		kt_check(ksm_set("merge_across_nodes", "0") == -EBUSY,
			 "merge_across_nodes cannot change while KSM pages exist");
	kt_check(ksm_set("max_page_sharing", "256") == 0,
		 "max_page_sharing can be written with its current value");
	if (write(to_child[1], "x", 1) != 1)
		kt_die("child");
	waitpid(pid, &status, 0);
	kt_check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "child's memory intact at exit");
	kt_check(ksm_set("run", "2") == 0, "run=2 unmerges");
	kt_check(ksm_get("pages_shared") == 0 && ksm_get("pages_sharing") == 0,
		 "pages_shared and pages_sharing are 0 after run=2");
	kt_check(kt_read_long("/proc/self/ksm_merging_pages") == 0,
		 "ksm_merging_pages is 0 after run=2");
	kt_check(matches_shadow() == 0, "parent's pages match its shadow after unmerge");
	for (i = 1, bad = 0; i < NINPROC; i++)
		bad += kt_pfn(page(NSHARED + i)) == pfn;
	kt_check(bad == 0, "no frame is mapped twice after unmerge");
	ksm_set("run", "0");
	ksm_set("pages_to_scan", "100");
	ksm_set("sleep_millisecs", "20");
	return kt_exit();
}
