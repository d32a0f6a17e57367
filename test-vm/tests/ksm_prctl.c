// SPDX-License-Identifier: GPL-2.0
/*
 * PR_SET_MEMORY_MERGE: the ABI of the prctl (defaults, bad arguments,
 * read back), every VMA of the process becomes mergeable, old and new,
 * memory never madvised merges (pagemap, smaps), the setting is inherited
 * across fork and exec (and so is VM_MERGEABLE), a child's own counts
 * start at zero, and turning it off unmerges everything.
 */
#include "ktest.h"

#define NPAGES 64

static size_t ps;

/* Run after exec: the flag survived, and new memory is mergeable. */
static int exec_child(void)
{
	char *p;

	kt_who = "exec'd child: ";
	kt_check(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1,
		 "PR_GET_MEMORY_MERGE is 1 after exec");
	p = kt_map(4);
	p[0] = 1;
	kt_check(kt_vma_has_flag(p, 4 * ps, "mg"),
		 "a new mapping after exec is VM_MERGEABLE");
	return kt_failures ? KT_FAIL : KT_PASS;
}

static void check_abi(void)
{
	kt_check(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 0,
		 "PR_GET_MEMORY_MERGE is 0 by default");
	kt_check(prctl(PR_SET_MEMORY_MERGE, 1, 1, 0, 0) == -1 && errno == EINVAL,
		 "PR_SET_MEMORY_MERGE refuses a non-zero arg3 with EINVAL");
	kt_check(prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 1) == -1 && errno == EINVAL,
		 "PR_SET_MEMORY_MERGE refuses a non-zero arg5 with EINVAL");
	kt_check(prctl(PR_GET_MEMORY_MERGE, 1, 0, 0, 0) == -1 && errno == EINVAL,
		 "PR_GET_MEMORY_MERGE refuses a non-zero arg2 with EINVAL");
	kt_check(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 0,
		 "a refused call changed nothing");
	/* like 6.12: any non-zero arg2 enables */
	kt_check(prctl(PR_SET_MEMORY_MERGE, 2, 0, 0, 0) == 0 &&
		 prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1,
		 "PR_SET_MEMORY_MERGE 2 enables, PR_GET_MEMORY_MERGE reads 1");
	kt_check(prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0) == 0 &&
		 prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 0,
		 "PR_SET_MEMORY_MERGE 0 disables");
}

static int all_same_frame(const char *p)
{
	uint64_t pfn[NPAGES];
	int i, bad = 0;

	kt_pfns(p, NPAGES, pfn);
	for (i = 0; i < NPAGES; i++)
		bad += !pfn[i] || pfn[i] != pfn[0];
	return !bad;
}

/*
 * A forked child: flag inherited, own counts at zero, same KSM frames.
 * ksmd is stopped meanwhile: its own counts are zero until ksmd scans it.
 */
static void check_fork(const char *p, uint64_t frame)
{
	pid_t pid;

	ksm_must_set("run", 0);
	pid = kt_fork();

	if (!pid) {
		kt_who = "forked child: ";
		kt_check(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1,
			 "PR_GET_MEMORY_MERGE is 1");
		kt_check(kt_merging_pages(0) == 0 &&
			 kt_ksm_stat(0, "ksm_rmap_items") == 0,
			 "its ksm_merging_pages and ksm_rmap_items start at 0");
		kt_check(kt_vma_has_flag(p, NPAGES * ps, "mg"),
			 "the inherited mapping is VM_MERGEABLE");
		kt_check(kt_pfn(p) == frame && all_same_frame(p),
			 "it maps the parent's KSM page");
		kt_child_exit();
	}
	kt_check(kt_join(pid) == 0, "a child inherits the setting");
	ksm_must_set("run", 1);
}

static void check_exec(const char *self)
{
	pid_t pid = kt_fork();

	if (!pid) {
		execl("/proc/self/exe", self, "exec-child", (char *)NULL);
		_exit(2);
	}
	kt_check(kt_join(pid) == 0, "the setting survives exec");
}

/* Turning it off unmerges the process's memory, for good. */
static void check_off(const char *p, const char *shadow)
{
	uint64_t pfn[NPAGES];

	kt_check(prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0) == 0 &&
		 prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 0,
		 "PR_SET_MEMORY_MERGE 0 sticks");
	kt_check(!kt_vma_has_flag(p, NPAGES * ps, "mg"),
		 "the mapping is no longer VM_MERGEABLE");
	kt_pfns(p, NPAGES, pfn);
	kt_check(kt_pfn_dups(pfn, NPAGES) == 0,
		 "turning it off gave every page its own frame");
	kt_check(kt_diff(p, shadow, NPAGES, "memory") == 0,
		 "memory matches its shadow");
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
		 "ksmd brings every counter back to 0");
	kt_check(kt_merging_pages(0) == 0, "ksm_merging_pages is 0 (%ld)",
		 kt_merging_pages(0));
}

static int all_merged(void *arg)
{
	return all_same_frame(arg);
}

int main(int argc, char **argv)
{
	char *old, *p, *shadow;
	long stat;
	int i;

	ps = kt_ps();
	if (argc > 1 && !strcmp(argv[1], "exec-child"))
		return exec_child();
	ksm_begin();
	check_abi();

	old = kt_map(4);
	old[0] = 1;
	kt_check(!kt_vma_has_flag(old, 4 * ps, "mg"),
		 "before the prctl, a mapping is not VM_MERGEABLE");
	kt_check(prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0,
		 "PR_SET_MEMORY_MERGE 1 succeeds");
	kt_check(kt_vma_has_flag(old, 4 * ps, "mg"),
		 "an existing mapping became VM_MERGEABLE");
	p = kt_map(NPAGES);
	for (i = 0; i < NPAGES; i++)
		kt_fill(p + i * ps, ps, 4242);
	shadow = kt_shadow(p, NPAGES);
	kt_check(kt_vma_has_flag(p, NPAGES * ps, "mg"),
		 "a new mapping is VM_MERGEABLE");
	stat = kt_ksm_stat(0, "ksm_merge_any");
	if (stat != -2)
		kt_check(stat == 1, "ksm_stat says ksm_merge_any: yes");

	ksm_go(1000, 10);
	kt_check(ksm_wait_for(all_merged, p, 10, 300) == 0,
		 "memory never madvised merged: all %d pages map one frame",
		 NPAGES);
	kt_check(kt_smaps_kb(p, NPAGES * ps, "KSM") == (long)(NPAGES * ps / 1024),
		 "smaps KSM: %ld kB (want %zu)", kt_smaps_kb(p, NPAGES * ps, "KSM"),
		 NPAGES * ps / 1024);
	kt_check(kt_merging_pages(0) >= NPAGES,
		 "ksm_merging_pages %ld counts them", kt_merging_pages(0));
	check_fork(p, kt_pfn(p));
	check_exec(argv[0]);

	check_off(p, shadow);
	return kt_exit();
}
