// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_unmerge madvise|run2|prctl: unmerging gives every page its own
 * frame again, keeps its contents, and brings the counters back to zero.
 * Two processes A and B hold pages merged across them, pages merged within
 * each, and unique pages; once they are merged (checked through pagemap),
 * they are unmerged by
 *   madvise  MADV_UNMERGEABLE in both processes, ksmd still running;
 *   run2     writing 2 to /sys/kernel/mm/ksm/run;
 *   prctl    PR_SET_MEMORY_MERGE 0 in both (they merged through
 *            PR_SET_MEMORY_MERGE 1, without madvise), ksmd still running.
 * Then no frame may be mapped twice in A and B, every page matches its
 * shadow, the counters are zero, and ksmd does not merge them again.
 */
#include "ktest.h"

#define NACROSS	96
#define NWITHIN	32
#define NUNIQUE	32
#define NPAGES	(NACROSS + NWITHIN + NUNIQUE)

enum { CMD_PFNS = KSM_AB_CMD, CMD_UNMERGE, CMD_COUNT };
enum { BY_MADVISE, BY_RUN2, BY_PRCTL };

static struct {
	uint64_t pfn[2][NPAGES];
	long merging[2];
} *sh;
static size_t ps;
static int method;

static uint64_t seed_of(int who, int i)
{
	if (i < NACROSS)
		return 3000 + i;
	if (i < NACROSS + NWITHIN)
		return 55555 * (who + 1);
	return 700001 * (who + 1) + i;
}

static void child_unmerge(char *mem)
{
	if (method == BY_MADVISE)
		kt_check(madvise(mem, NPAGES * ps, MADV_UNMERGEABLE) == 0,
			 "madvise(MADV_UNMERGEABLE) succeeds");
	if (method == BY_PRCTL)
		kt_check(prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0) == 0 &&
			 prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 0,
			 "prctl(PR_SET_MEMORY_MERGE, 0) succeeds and sticks");
	kt_check(!kt_vma_has_flag(mem, NPAGES * ps, "mg"),
		 "the VMA is no longer VM_MERGEABLE (smaps VmFlags)");
}

/* With prctl, the process's memory is mergeable as it is mapped. */
static int start(struct ksm_ab *c)
{
	if (method == BY_PRCTL && prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		kt_die("prctl(PR_SET_MEMORY_MERGE, 1)");
	return method == BY_PRCTL;
}

static void serve(struct ksm_ab *c, long cmd)
{
	if (cmd == CMD_PFNS)
		kt_pfns(c->mem, NPAGES, sh->pfn[c->who]);
	if (cmd == CMD_UNMERGE)
		child_unmerge(c->mem);
	if (cmd == CMD_COUNT)
		sh->merging[c->who] = kt_smaps_kb(c->mem, NPAGES * ps, "KSM");
}

static const struct ksm_ab_ops ab = {
	.npages = NPAGES, .seed = seed_of, .start = start, .serve = serve,
};

/* Pages of A and B that map a frame some other page also maps. */
static int shared_frames(void)
{
	return kt_pfn_dups(&sh->pfn[0][0], 2 * NPAGES);
}

static int merged_as_expected(void)
{
	int i, bad = 0;

	for (i = 0; i < NACROSS; i++)
		bad += !sh->pfn[0][i] || sh->pfn[0][i] != sh->pfn[1][i];
	for (i = NACROSS + 1; i < NACROSS + NWITHIN; i++)
		bad += sh->pfn[0][i] != sh->pfn[0][NACROSS] ||
		       sh->pfn[1][i] != sh->pfn[1][NACROSS];
	return bad;
}

static int regions_merged(void *kid)
{
	ksm_ab_ask(kid, CMD_PFNS);
	return merged_as_expected() == 0;
}

static void unmerge(struct kt_proc *kid)
{
	long pid[2] = { kid[0].pid, kid[1].pid };
	int who;

	if (method == BY_RUN2) {
		kt_check(ksm_set("run", "2") == 0, "run=2 succeeds");
		kt_check(ksm_get("run") == 2, "run reads 2");
		kt_check(ksm_all_zero(), "the counters are 0 as soon as run=2 returns");
		for (who = 0; who < 2; who++)
			kt_check(kt_merging_pages(pid[who]) == 0 &&
				 kt_ksm_stat(pid[who], "ksm_merging_pages") == 0,
				 "%c's ksm_merging_pages is 0", "AB"[who]);
	} else {
		kt_check(ksm_ab_ask(kid, CMD_UNMERGE) == 0,
			 "both processes unmerged their memory");
	}
}

/* MADV_UNMERGEABLE and prctl 0 are for good: ksmd leaves the pages be. */
static void stays_unmerged(struct kt_proc *kid)
{
	ksm_wait_scans(2, 300);
	ksm_ab_ask(kid, CMD_PFNS);
	kt_check(shared_frames() == 0 && ksm_get("pages_shared") == 0,
		 "two full scans later nothing merged again (%d pages share, "
		 "pages_shared %ld)", shared_frames(), ksm_get("pages_shared"));
	kt_check(ksm_ab_ask(kid, KSM_AB_CHECK) == 0, "both still match their shadows");
}

/* run=2 only stops ksmd: with run=1 again, the same pages merge again. */
static void rerun(struct kt_proc *kid)
{
	ksm_must_set("run", 1);
	kt_check(ksm_wait_for(regions_merged, kid, 10, 300) == 0,
		 "run=1 after run=2 merges the pages again (pagemap)");
	ksm_expect("merged again", NACROSS + 2, NACROSS + 2 * (NWITHIN - 1),
		   2 * NUNIQUE);
	kt_check(ksm_ab_ask(kid, KSM_AB_CHECK) == 0, "both still match their shadows");
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "madvise", "run2", "prctl" };
	struct kt_proc kid[2];
	int who;

	for (method = 0; method < 3; method++)
		if (argc > 1 && !strcmp(argv[1], names[method]))
			break;
	if (method == 3) {
		printf("usage: %s madvise|run2|prctl\n", argv[0]);
		return KT_FAIL;
	}
	ksm_begin();
	ps = kt_ps();
	sh = kt_shared(sizeof(*sh));
	ksm_ab_start(kid, &ab);

	ksm_go(1000, 10);
	kt_check(ksm_wait_for(regions_merged, kid, 10, 300) == 0,
		 "merged across and within the processes (pagemap)");
	/* with prctl, other memory of A and B merges too: not exact */
	if (method != BY_PRCTL)
		ksm_expect("merged", NACROSS + 2, NACROSS + 2 * (NWITHIN - 1),
			   2 * NUNIQUE);
	ksm_print("merged");

	unmerge(kid);
	ksm_ab_ask(kid, CMD_PFNS);
	kt_check(shared_frames() == 0,
		 "after unmerging, no frame is mapped twice in A and B (%d pages share)",
		 shared_frames());
	kt_check(ksm_ab_ask(kid, KSM_AB_CHECK) == 0, "both match their shadows");
	ksm_ab_ask(kid, CMD_COUNT);
	kt_check(sh->merging[0] == 0 && sh->merging[1] == 0,
		 "smaps KSM: is 0 kB in A and B (%ld, %ld)",
		 sh->merging[0], sh->merging[1]);
	if (method != BY_RUN2)
		kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
			 "ksmd brings every counter back to 0");
	ksm_print("unmerged");
	ksm_check_zero("after unmerging");
	for (who = 0; who < 2; who++)
		kt_check(kt_merging_pages(kid[who].pid) == 0,
			 "%c's /proc/pid/ksm_merging_pages is 0 (%ld)", "AB"[who],
			 kt_merging_pages(kid[who].pid));

	if (method == BY_RUN2)
		rerun(kid);
	else
		stays_unmerged(kid);
	ksm_ab_finish(kid);
	return kt_exit();
}
