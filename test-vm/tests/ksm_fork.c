// SPDX-License-Identifier: GPL-2.0
/*
 * fork and exit while ksmd scans at full speed (sleep_millisecs=0).
 * 1. A process P with merged memory forks two children: they inherit the
 *    VM_MERGEABLE mapping and the KSM page itself, start with their own
 *    counts at zero, and ksmd counts their mappings exactly; they exit one
 *    by one and the counters follow, exactly.
 * 2. A PR_SET_MEMORY_MERGE process forks: the child inherits the flag, and
 *    memory it maps later merges with its parent's.
 * 3. Churn: short-lived processes (half of them with the prctl) fork,
 *    write, check their shadows and exit at random moments of the scan.
 * After everything exited, ksmd must bring every counter back to zero.
 */
#include "ktest.h"

#define NSAME	64	/* one content, repeated */
#define NUNIQ	32
#define NPAGES	(NSAME + NUNIQ)
#define NKIDS	2
#define CHURN_SECONDS	8

enum { CMD_FORK = 1, CMD_CHECK, CMD_QUIT };

static size_t ps;
static struct {
	uint64_t frame;			/* P's KSM page */
	int ready;
} *sh;

/* Content of page @i of the family member @who (0: P, 1..: children). */
static uint64_t seed_of(int who, int i)
{
	return i < NSAME ? 424242 : 100003 * (who + 1) + i;
}

/* A forked child of P: checks what it inherited, then owns its pages. */
static void member(struct kt_proc *p, char *mem, char *shadow, int who)
{
	char name[16];
	int i;

	snprintf(name, sizeof(name), "C%d: ", who);
	kt_who = strdup(name);
	kt_check(kt_vma_has_flag(mem, NPAGES * ps, "mg"),
		 "inherited the VM_MERGEABLE mapping");
	kt_check(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 0,
		 "PR_GET_MEMORY_MERGE is 0 (only madvise was used)");
	kt_check(kt_ksm_stat(0, "ksm_merging_pages") == 0 &&
		 kt_ksm_stat(0, "ksm_rmap_items") == 0,
		 "its ksm_merging_pages and ksm_rmap_items start at 0");
	kt_check(kt_pfn(mem) == sh->frame && kt_pfn(mem + (NSAME - 1) * ps) ==
		 sh->frame, "it maps P's KSM page");
	for (i = NSAME; i < NPAGES; i++) {
		kt_fill(mem + i * ps, ps, seed_of(who, i));
		memcpy(shadow + i * ps, mem + i * ps, ps);
	}
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "matches its shadow");
	kt_put(p->up, kt_failures);
	while (kt_get(p->down) == CMD_CHECK) {
		kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
			 "matches its shadow");
		kt_put(p->up, kt_failures);
	}
	kt_child_exit();
}

/* P: holds the memory, forks members on request, reports on exit. */
static int leader(struct kt_proc *p)
{
	struct kt_proc kid[NKIDS];
	char *mem = kt_map(NPAGES), *shadow;
	int i, n = 0, bad = 0;
	long cmd;

	kt_who = "P: ";
	for (i = 0; i < NPAGES; i++)
		kt_fill(mem + i * ps, ps, seed_of(0, i));
	shadow = kt_shadow(mem, NPAGES);
	if (madvise(mem, NPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	kt_put(p->up, 0);
	while ((cmd = kt_get(p->down)) > 0 && cmd != CMD_QUIT) {
		if (cmd == CMD_FORK && n < NKIDS) {
			sh->frame = kt_pfn(mem);
			if (!kt_spawn(&kid[n]))
				member(&kid[n], mem, shadow, n + 1);
			bad += kt_get(kid[n].up) != 0;
			n++;
		} else if (cmd == CMD_CHECK) {
			bad += kt_diff(mem, shadow, NPAGES, "memory") != 0;
		} else if (cmd > CMD_QUIT && cmd - CMD_QUIT <= n) {
			/* end member cmd - CMD_QUIT */
			bad += kt_ask(&kid[cmd - CMD_QUIT - 1], CMD_CHECK) != 0;
			bad += kt_finish(&kid[cmd - CMD_QUIT - 1]) != 0;
		}
		kt_put(p->up, bad);
	}
	kt_child_exit();
}

static void family(void)
{
	long same = NSAME - 1;
	struct kt_proc p;
	int k;

	if (!kt_spawn(&p))
		leader(&p);
	if (kt_get(p.up) != 0)
		kt_die("P setup");
	ksm_go(1000, 0);
	ksm_expect("P merged", 1, same, NUNIQ);
	/* fork with ksmd stopped: the children rewrite their unique pages */
	ksm_must_set("run", 0);
	for (k = 0; k < NKIDS; k++)
		kt_check(kt_ask(&p, CMD_FORK) == 0, "child C%d forked", k + 1);
	ksm_must_set("run", 1);
	ksm_expect("the children's mappings are counted", 1,
		   NSAME * (NKIDS + 1) - 1, NUNIQ * (NKIDS + 1));
	for (k = NKIDS; k > 0; k--) {
		kt_check(kt_ask(&p, CMD_QUIT + k) == 0,
			 "C%d still matches its shadow and exits cleanly", k);
		ksm_expect(k == 2 ? "after C2 exited" : "after C1 exited", 1,
			   NSAME * k - 1, NUNIQ * k);
	}
	kt_check(kt_ask(&p, CMD_CHECK) == 0, "P matches its shadow");
	kt_put(p.down, CMD_QUIT);
	kt_check(kt_finish(&p) == 0, "P exits cleanly");
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
		 "after P exited, ksmd brings every counter back to 0");
}

/*
 * Do the fresh pages map the parent's KSM page?  Its frame is read from
 * the inherited mapping each time, as compaction may move the page.
 */
static char *inherited;

static int same_frame(void *arg)
{
	char *mem = arg;
	uint64_t frame = kt_pfn(inherited);

	return frame && kt_pfn(mem) == frame &&
	       kt_pfn(mem + (NSAME - 1) * ps) == frame;
}

static int self_merged(void *arg)
{
	char *mem = arg;
	uint64_t pfn[NSAME];
	int i;

	kt_pfns(mem, NSAME, pfn);
	for (i = 0; i < NSAME; i++)
		if (!pfn[i] || pfn[i] != pfn[0])
			return 0;
	return 1;
}

/* On a failure, say where the fresh pages are. */
static void where_fresh(char *fresh)
{
	uint64_t pfn[NSAME], frame = kt_pfn(inherited);
	int i, on_parent = 0, on_first = 0;

	kt_pfns(fresh, NSAME, pfn);
	for (i = 0; i < NSAME; i++) {
		on_parent += frame && pfn[i] == frame;
		on_first += pfn[i] && pfn[i] == pfn[0];
	}
	kt_note("parent's KSM page %#llx; of %d fresh pages %d map it, %d "
		"map the frame of the first (%#llx)",
		(unsigned long long)frame, NSAME, on_parent, on_first,
		(unsigned long long)pfn[0]);
	ksm_print("prctl C");
}

/* Part 2: the child of a PR_SET_MEMORY_MERGE process merges new memory. */
static void prctl_family(void)
{
	char *mem, *fresh;
	pid_t pid;
	int i;

	pid = kt_fork();
	if (!pid) {
		kt_who = "prctl P: ";
		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
			kt_die("prctl(PR_SET_MEMORY_MERGE)");
		mem = kt_map(NSAME);
		for (i = 0; i < NSAME; i++)
			kt_fill(mem + i * ps, ps, seed_of(0, i));
		kt_check(ksm_wait_for(self_merged, mem, 10, 300) == 0,
			 "memory never madvised merged");
		if (!kt_fork()) {
			kt_who = "prctl C: ";
			kt_check(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1,
				 "PR_GET_MEMORY_MERGE is 1 in the child");
			inherited = mem;
			fresh = kt_map(NSAME);
			for (i = 0; i < NSAME; i++)
				kt_fill(fresh + i * ps, ps, seed_of(0, i));
			i = ksm_wait_for(same_frame, fresh, 10, 300);
			kt_check(i == 0, "memory the child mapped itself "
				 "merged with the parent's KSM page");
			if (i)
				where_fresh(fresh);
			kt_child_exit();
		}
		i = kt_join(kt_kids[0]);
		kt_check(i == 0, "the child's checks passed (status %d)", i);
		kt_child_exit();
	}
	kt_check(kt_join(pid) == 0, "PR_SET_MEMORY_MERGE is inherited, and used");
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
		 "after they exited, ksmd brings every counter back to 0");
}

/* One short life: merge, fork a writer, check, exit at a random time. */
static void churner(unsigned int r)
{
	char *mem, *shadow;
	int i, status;
	pid_t g;

	if (r & 1)
		prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0);
	mem = kt_map(NPAGES);
	for (i = 0; i < NPAGES; i++)
		kt_fill(mem + i * ps, ps, i < NSAME ? 1 + i % 4 : 5 + r * NPAGES + i);
	shadow = kt_shadow(mem, NPAGES);
	madvise(mem, NPAGES * ps, MADV_MERGEABLE);
	usleep(rand_r(&r) % 50000);
	g = fork();
	if (!g) {
		for (i = 0; i < NPAGES; i += 3)
			kt_poke(mem, shadow, i * ps + (r % 97), (char)r);
		usleep(rand_r(&r) % 30000);
		_exit(kt_diff(mem, shadow, NPAGES, "grandchild") ? 1 : 0);
	}
	usleep(rand_r(&r) % 50000);
	i = kt_diff(mem, shadow, NPAGES, "churner");
	if (waitpid(g, &status, 0) != g || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		i++;
	_exit(i ? 1 : 0);
}

static void churn(void)
{
	time_t end = time(NULL) + CHURN_SECONDS;
	unsigned int n = 0, bad = 0;
	pid_t pid;

	while (time(NULL) < end) {
		pid = kt_fork();
		if (!pid)
			churner(n * 2654435761U + 1);
		n++;
		if (kt_nkids >= 6)
			bad += kt_join(kt_kids[0]) != 0;
	}
	while (kt_nkids)
		bad += kt_join(kt_kids[0]) != 0;
	kt_check(bad == 0, "%u short-lived processes (and their forked writers) "
		 "always matched their shadows (%u did not)", n, bad);
	ksm_print("after churn");
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
		 "after the churn, ksmd brings every counter back to 0");
}

int main(void)
{
	ksm_begin();
	ps = kt_ps();
	sh = kt_shared(sizeof(*sh));
	family();
	prctl_family();
	churn();
	ksm_print("end");
	return kt_exit();
}
