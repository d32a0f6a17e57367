// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_domains POLICY | scrub: merge domains and the scrubbing of KSM pages.
 *
 * POLICY (global, cgroup, user, process): two worker processes each map,
 * at the same fixed address,
 *   across[NACROSS]  the same contents in both workers
 *   pairs[2*NPAIRS]  pairs of equal pages, different in each worker
 * With the workers in one domain (global; cgroup with both in one memory
 * cgroup) the across pages merge between them; in two domains (process;
 * cgroup with a cgroup each; user with one worker in a user namespace of
 * its own) no across page may share a frame with the other worker's, as
 * pagemap shows, while the pairs inside each worker still merge.  The
 * counters must say the same.  Under process, a fork child of a worker
 * shares its domain: fresh pages it fills with the worker's contents
 * merge with the worker's.  Zero-filled pages (use_zero_pages=1) stay in
 * their domain unless zero_pages_across_domains is set.
 *
 * cgroup-move (merge_domain=cgroup): a worker that moves to another
 * memory cgroup stops forming new sharing with its old one at once, even
 * with pages that ksmd indexed in the current pass before the move; its
 * existing sharing stays; and it merges with its new cgroup.
 *
 * scrub (debug kernels: /sys/kernel/debug/ksm/flip_bit): a bit flipped
 * in one KSM page is found by ksmd's scrubbing, counted in
 * scrub_failures, and every mapper of that page gets SIGBUS; the other
 * KSM pages keep working and scrubbing them finds nothing wrong.
 */
#define _GNU_SOURCE
#include "ktest.h"
#include <sched.h>
#include <sys/stat.h>

#define NACROSS	32
#define NPAIRS	8
#define NZERO	8
#define NPAGES	(NACROSS + 2 * NPAIRS + NZERO)
#define BASE	((char *)0x5a0000000000UL)

static size_t ps;

enum { CMD_FORK = 1 };

static void fill_across(char *at)
{
	int i;

	for (i = 0; i < NACROSS; i++)
		kt_fill(at + i * ps, ps, 100 + i);
}

/* Fill the worker's pages at @at; @who picks the pairs' contents. */
static void fill(char *at, int who)
{
	int i;

	fill_across(at);
	for (i = 0; i < 2 * NPAIRS; i++)
		kt_fill(at + (NACROSS + i) * ps, ps, 1000 * (who + 1) + i / 2);
	memset(at + (NACROSS + 2 * NPAIRS) * ps, 0, NZERO * ps);
}

/*
 * A worker: its memory at BASE, registered; it answers commands on @down
 * and exits at end of file.  CMD_FORK: a fork child maps NACROSS fresh
 * pages at BASE + NPAGES pages with the across contents and stays.
 */
static int worker(int who, int down, int up)
{
	char *mem = kt_map_at(BASE, NPAGES), *more;
	pid_t kid = 0;
	long cmd;

	fill(mem, who);
	if (madvise(mem, NPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	kt_put(up, 0);
	while ((cmd = kt_get(down)) > 0) {
		if (cmd == CMD_FORK && !kid) {
			int ready[2];

			if (pipe(ready))
				kt_die("pipe");
			kid = fork();
			if (!kid) {
				more = kt_map_at(BASE + NPAGES * ps, NACROSS);
				fill_across(more);
				madvise(more, NACROSS * ps, MADV_MERGEABLE);
				kt_put(ready[1], 0);
				for (;;)
					pause();
			}
			kt_get(ready[0]);	/* its memory is registered */
			close(ready[0]);
			close(ready[1]);
			kt_put(up, kid);
			continue;
		}
		kt_put(up, 0);
	}
	if (kid > 0) {
		kill(kid, SIGKILL);
		waitpid(kid, NULL, 0);
	}
	return 0;
}

enum { IN_PLACE, IN_CGROUP_A, IN_CGROUP_B, IN_USERNS };

/* Start worker @who where @where says; returns its pid. */
static pid_t start_worker(struct kt_proc *w, int who, int where,
			  const char *self)
{
	char a[16], b[16], c[16];

	if (kt_spawn(w)) {
		if (kt_get(w->up) != 0)
			kt_die("worker setup");
		return w->pid;
	}
	if (where == IN_CGROUP_A)
		kt_cg_join("ksm-a");
	if (where == IN_CGROUP_B)
		kt_cg_join("ksm-b");
	if (where == IN_USERNS) {
		/* exec: only a new mm takes the new namespace as its own */
		if (unshare(CLONE_NEWUSER))
			kt_die("unshare(CLONE_NEWUSER)");
		snprintf(a, sizeof(a), "%d", who);
		snprintf(b, sizeof(b), "%d", w->down);
		snprintf(c, sizeof(c), "%d", w->up);
		execl("/proc/self/exe", self, "worker", a, b, c, (char *)NULL);
		kt_die("exec");
	}
	exit(worker(who, w->down, w->up));
}

/* How many across pages of @a and @b share a frame. */
static int across_shared(pid_t a, pid_t b, size_t off)
{
	uint64_t pa[NACROSS], pb[NACROSS];
	int i, n = 0;

	kt_pfns_of(a, BASE, NACROSS, pa);
	kt_pfns_of(b, BASE + off * ps, NACROSS, pb);
	for (i = 0; i < NACROSS; i++)
		n += pa[i] && pa[i] == pb[i];
	return n;
}

/* How many pairs of worker @pid share a frame. */
static int pairs_shared(pid_t pid)
{
	uint64_t p[2 * NPAIRS];
	int i, n = 0;

	kt_pfns_of(pid, BASE + NACROSS * ps, 2 * NPAIRS, p);
	for (i = 0; i < NPAIRS; i++)
		n += p[2 * i] && p[2 * i] == p[2 * i + 1];
	return n;
}

static pid_t fork_pids[2];

static int fork_merged_cond(void *arg)
{
	pid_t *p = arg;

	return across_shared(p[0], p[1], NPAGES) == NACROSS;
}

static void make_cgroups(void)
{
	kt_cg_memory();
	kt_cg_make("ksm-a");
	kt_cg_make("ksm-b");
}

static int check_policy(const char *policy, const char *self)
{
	int split, where[2] = { IN_PLACE, IN_PLACE }, who, n;
	struct kt_proc w[2];
	pid_t pid[2], kid;
	long zero;

	if (ksm_set("merge_domain", policy))
		kt_skip("this kernel has no merge domains");
	split = strcmp(policy, "global") != 0;
	if (!strcmp(policy, "cgroup")) {
		make_cgroups();
		where[0] = IN_CGROUP_A;
		where[1] = IN_CGROUP_B;
	} else if (!strcmp(policy, "user")) {
		where[1] = IN_USERNS;
	}
	ksm_must_set("use_zero_pages", 1);
	for (who = 0; who < 2; who++)
		pid[who] = start_worker(&w[who], who, where[who], self);

	ksm_go(1000, 10);
	/*
	 * across: one KSM page each, or none; pairs: one per pair; zero
	 * pages: the zero page, or in two domains one KSM page per worker.
	 */
	if (split)
		ksm_expect("two domains", 2 * NPAIRS + 2,
			   2 * NPAIRS + 2 * (NZERO - 1), 2 * NACROSS);
	else
		ksm_expect("one domain", 2 * NPAIRS + NACROSS,
			   2 * NPAIRS + NACROSS, 0);
	n = across_shared(pid[0], pid[1], 0);
	kt_check(n == (split ? 0 : NACROSS),
		 "merge_domain=%s: %d of %d equal pages of the two workers "
		 "share a frame (want %d)", policy, n, NACROSS,
		 split ? 0 : NACROSS);
	kt_check(pairs_shared(pid[0]) == NPAIRS &&
		 pairs_shared(pid[1]) == NPAIRS,
		 "inside each worker, every pair shares a frame");
	zero = ksm_get("ksm_zero_pages");
	kt_check(zero == (split ? 0 : 2 * NZERO),
		 "zero-filled pages map the zero page only with one domain "
		 "(ksm_zero_pages %ld)", zero);

	if (split && !strcmp(policy, "process")) {
		kid = kt_ask(&w[0], CMD_FORK);
		fork_pids[0] = pid[0];
		fork_pids[1] = kid;
		ksm_wait_for(fork_merged_cond, fork_pids, 5, 60);
		n = across_shared(pid[0], kid, NPAGES);
		kt_check(n == NACROSS,
			 "a fork child shares its parent's domain: %d of %d "
			 "fresh equal pages merged with the parent's", n,
			 NACROSS);
	}
	if (split && !strcmp(policy, "cgroup")) {
		/* two workers in one cgroup merge again */
		kt_finish(&w[1]);
		pid[1] = start_worker(&w[1], 1, IN_CGROUP_A, self);
		ksm_wait_scans(3, 120);
		n = across_shared(pid[0], pid[1], 0);
		kt_check(n == NACROSS, "two workers in one memory cgroup: %d "
			 "of %d equal pages merged", n, NACROSS);
	}
	for (who = 0; who < 2; who++)
		kt_check(kt_finish(&w[who]) == 0, "worker %d exits cleanly", who);
	ksm_must_set("run", 2);
	if (!strcmp(policy, "cgroup")) {
		kt_cg_remove("ksm-a");
		kt_cg_remove("ksm-b");
	}
	return kt_exit();
}

/* ---- a move to another cgroup ---------------------------------------- */

static int unshared_is(void *arg)
{
	return ksm_get("pages_unshared") >= *(long *)arg;
}

/*
 * Workers X and Z in cgroup A, registered in that order: ksmd scans X
 * first.  One batch of exactly X's pages puts X's across pages into the
 * unstable index under A's domain; during ksmd's nap after it, X moves to
 * B; the next batch scans Z, whose across pages are X's contents.  They
 * must not pair with X's entries: X is in B now.  X's pairs merged inside
 * X under A stay merged (existing sharing is left alone); a worker W that
 * joins B merges its across pages with X's.
 */
static int check_cgroup_move(const char *self)
{
	long want = NACROSS, scanned;
	struct kt_proc w[3];
	pid_t x, z, wb;
	char val[16];
	int n;

	if (ksm_set("merge_domain", "cgroup"))
		kt_skip("this kernel has no merge domains");
	make_cgroups();
	ksm_must_set("run", 2);
	ksm_must_set("use_zero_pages", 0);
	x = start_worker(&w[0], 0, IN_CGROUP_A, self);
	z = start_worker(&w[1], 1, IN_CGROUP_A, self);

	/* One batch over X's NPAGES pages, then a long nap. */
	ksm_must_set("smart_scan", 0);
	ksm_must_set("pages_to_scan", NPAGES);
	ksm_must_set("sleep_millisecs", 4000);
	scanned = ksm_get("pages_scanned");
	ksm_must_set("run", 1);
	for (n = 0; n < 1500 && !(unshared_is(&want) &&
		ksm_get("pages_scanned") - scanned >= NPAGES); n++)
		usleep(20000);
	kt_check(unshared_is(&want),
		 "X's %d across pages are in the unstable index", NACROSS);
	snprintf(val, sizeof(val), "%d", x);
	kt_check(!kt_cg_write("ksm-b", "cgroup.procs", val),
		 "X moves to cgroup B during ksmd's nap");
	kt_check(ksm_get("full_scans") == 0 &&
		 ksm_get("pages_scanned") - scanned == NPAGES,
		 "and ksmd has not looked at Z yet (%ld pages scanned)",
		 ksm_get("pages_scanned") - scanned);

	ksm_must_set("sleep_millisecs", 10);
	ksm_must_set("pages_to_scan", 1000);
	ksm_wait_scans(4, 120);
	n = across_shared(x, z, 0);
	kt_check(n == 0, "after the move, %d of %d equal pages of X (in B) "
		 "and Z (in A) share a frame (want 0)", n, NACROSS);
	kt_check(pairs_shared(x) == NPAIRS && pairs_shared(z) == NPAIRS,
		 "the pairs merged inside each worker stay merged");

	wb = start_worker(&w[2], 1, IN_CGROUP_B, self);
	ksm_wait_scans(4, 120);
	n = across_shared(x, wb, 0);
	kt_check(n == NACROSS, "X merges with W, also in B: %d of %d", n,
		 NACROSS);
	n = across_shared(z, wb, 0);
	kt_check(n == 0, "and Z (in A) with neither: %d shared with W", n);

	for (n = 0; n < 3; n++)
		kt_check(kt_finish(&w[n]) == 0, "worker %d exits cleanly", n);
	ksm_must_set("run", 2);
	kt_cg_remove("ksm-a");
	kt_cg_remove("ksm-b");
	return kt_exit();
}

/* ---- scrubbing -------------------------------------------------------- */

#define FLIP	"/sys/kernel/debug/ksm/flip_bit"

static int flip_bit(void *addr)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%p", addr);
	return kt_write(FLIP, buf);
}

static int scrubbed_cond(void *arg)
{
	return ksm_get("pages_scrubbed") >= *(long *)arg;
}

static int failed_cond(void *arg)
{
	return ksm_get("scrub_failures") > *(long *)arg;
}

static int check_scrub(void)
{
	long failures = ksm_get("scrub_failures"), want;
	char *mem, *shadow, *plain;
	struct kt_proc kid;
	int i, bus;

	if (access(FLIP, W_OK))
		kt_skip("no " FLIP " (CONFIG_KSM_SCRUB_INJECT)");
	mem = kt_map(2 * NPAIRS);
	for (i = 0; i < 2 * NPAIRS; i++)
		kt_fill(mem + i * ps, ps, 4000 + i / 2);
	shadow = kt_shadow(mem, 2 * NPAIRS);
	plain = kt_map(1);
	plain[0] = 1;
	madvise(mem, 2 * NPAIRS * ps, MADV_MERGEABLE);
	ksm_must_set("scrub_pages_per_batch", 1000);
	ksm_go(1000, 10);
	ksm_expect("merged", NPAIRS, NPAIRS, 0);
	want = ksm_get("pages_scrubbed") + 4 * NPAIRS;
	kt_check(ksm_wait_for(scrubbed_cond, &want, 20, 60) == 0 &&
		 ksm_get("scrub_failures") == failures,
		 "intact KSM pages are scrubbed (%ld) and nothing is found",
		 ksm_get("pages_scrubbed"));

	/* A fork child maps the KSM pages too, through copied PTEs only. */
	if (!kt_spawn(&kid)) {
		kt_put(kid.up, 0);
		kt_get(kid.down);
		for (i = 0, bus = 0; i < 100 && !bus; i++) {
			bus = kt_sigbus(mem);
			if (!bus)
				usleep(100000);
		}
		kt_check(bus, "the fork child's mapping raises SIGBUS too");
		kt_check(kt_diff(mem + 2 * ps, shadow + 2 * ps,
				 2 * NPAIRS - 2, "child") == 0,
			 "the child reads the other KSM pages intact");
		kt_put(kid.up, 0);
		kt_child_exit();
	}
	kt_get(kid.up);

	kt_check(flip_bit(plain) == -EINVAL,
		 "flip_bit refuses an address without a KSM page (EINVAL)");
	kt_check(flip_bit(mem) == 0, "a bit of KSM page 0 is flipped");
	i = ksm_wait_for(failed_cond, &failures, 20, 60);
	kt_check(i == 0, "scrubbing found it: scrub_failures %ld",
		 ksm_get("scrub_failures"));
	for (i = 0, bus = 0; i < 100 && !bus; i++) {
		bus = kt_sigbus(mem);
		if (!bus)
			usleep(100000);
	}
	kt_check(bus && kt_sigbus(mem + ps),
		 "both mappings of the damaged KSM page raise SIGBUS");
	kt_check(kt_diff(mem + 2 * ps, shadow + 2 * ps, 2 * NPAIRS - 2,
			 "memory") == 0,
		 "the other KSM pages read back intact");
	kt_check(ksm_get("scrub_failures") == failures + 1,
		 "exactly one scrub failure (%ld)",
		 ksm_get("scrub_failures") - failures);
	kt_check(kt_ask(&kid, 1) == 0 && kt_finish(&kid) == 0,
		 "the fork child saw the same");
	/* the others keep working: a write still copies */
	kt_poke(mem, shadow, 3 * ps + 1, mem[3 * ps + 1] ^ 1);
	kt_check(!memcmp(mem + 2 * ps, shadow + 2 * ps, 2 * ps),
		 "a write to another KSM page copies, as ever");
	munmap(mem, 2 * ps);
	return kt_exit();
}

/*
 * With vm.memory_failure_recovery=0, memory_failure() panics.  A scrub
 * failure must not take the machine down: the page is quarantined and
 * stays mapped, and the kernel log says so.
 */
#define MF_RECOVERY	"/proc/sys/vm/memory_failure_recovery"

static void recovery_on(void)
{
	kt_write(MF_RECOVERY, "1");
}

static int check_scrub_norecovery(void)
{
	long failures = ksm_get("scrub_failures");
	char *mem;
	int i;

	if (access(FLIP, W_OK))
		kt_skip("no " FLIP " (CONFIG_KSM_SCRUB_INJECT)");
	if (access(MF_RECOVERY, W_OK))
		kt_skip("no " MF_RECOVERY);
	mem = kt_map(2);
	for (i = 0; i < 2; i++)
		kt_fill(mem + i * ps, ps, 4100);
	madvise(mem, 2 * ps, MADV_MERGEABLE);
	ksm_must_set("scrub_pages_per_batch", 1000);
	ksm_go(1000, 10);
	ksm_expect("merged", 1, 1, 0);
	atexit(recovery_on);
	kt_check(!kt_write(MF_RECOVERY, "0"), "memory_failure_recovery=0");
	kt_check(flip_bit(mem) == 0, "a bit of the KSM page is flipped");
	kt_check(ksm_wait_for(failed_cond, &failures, 20, 60) == 0,
		 "scrubbing found it: scrub_failures %ld, and the system "
		 "still runs", ksm_get("scrub_failures"));
	kt_check(!kt_sigbus(mem + ps),
		 "the page stays mapped, as documented for recovery off");
	recovery_on();
	munmap(mem, 2 * ps);
	return kt_exit();
}

int main(int argc, char **argv)
{
	ps = kt_ps();
	if (argc == 5 && !strcmp(argv[1], "worker"))
		return worker(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	if (argc != 2)
		kt_die("usage: ksm_domains global|cgroup|user|process|"
		       "cgroup-move|scrub|scrub-norecovery");
	ksm_begin();
	if (!strcmp(argv[1], "scrub"))
		return check_scrub();
	if (!strcmp(argv[1], "scrub-norecovery"))
		return check_scrub_norecovery();
	if (!strcmp(argv[1], "cgroup-move"))
		return check_cgroup_move(argv[0]);
	return check_policy(argv[1], argv[0]);
}
