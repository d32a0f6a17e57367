// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_soak [SECONDS] [-- COMMAND...]: a randomized soak of KSM.
 *
 * NWORKERS processes each map NREGIONS mergeable regions of REGPAGES
 * pages, drawn from NCOMMON contents (so that most of them merge), zero
 * pages and unique pages, and keep a shadow of every page in memory that
 * is never mergeable.  Until SECONDS have passed (0 or none: ksm.soak=
 * on the kernel command line), with ksmd at full speed, each picks random
 * operations: write pages (and their shadow), verify pages against the
 * shadow, fork (the child checks its whole copy against the shadow it
 * inherited, then works on its own for a while), munmap and mmap again
 * part of a region, move a region (mremap), toggle MADV_MERGEABLE and
 * MADV_UNMERGEABLE, push pages to swap (MADV_PAGEOUT, zram), move pages
 * to the other NUMA node (move_pages or mbind).  A controller writes
 * /proc/sys/vm/compact_memory every few seconds, takes ksmd through
 * run=1 -> 2 -> 1 now and then (after a few full scans), flips
 * smart_scan and use_zero_pages, and samples the counters.  COMMAND
 * (stress-ng) runs alongside for the same time, without CAP_SYS_ADMIN:
 * "--timeout SECONDSs" is added to it; it must exit 0.
 *
 * At the end every process verifies all of its pages, run=2 must bring
 * every counter to 0 with the workers still mapping them, the pages are
 * verified once more, and one "figures:" line sums up what was done.  A
 * mismatch names the process, region, page, offset and the expected and
 * actual byte; there must be none (and no kernel splat: the harness),
 * and ksm_zero_pages, sampled every 100 ms, must never be below 0.
 */
#define _GNU_SOURCE
#include "ktest.h"
#include <linux/capability.h>

#define NWORKERS	4
#define NREGIONS	3
#define REGPAGES	256
#define NCOMMON		8	/* contents that most pages are drawn from */
#define MAXRUN		64	/* pages that one operation touches at most */
#define MAXDEPTH	2	/* forks of forks */
#define MPOL_DEFAULT	0
#define MPOL_BIND	2

enum { OP_WRITE, OP_VERIFY, OP_FORK, OP_REMAP, OP_MREMAP, OP_TOGGLE,
	OP_PAGEOUT, OP_MIGRATE, NOPS };

static const char *const op_name[NOPS] = {
	"write", "verify", "fork", "remap", "mremap", "toggle", "pageout",
	"migrate",
};

static const int op_weight[NOPS] = { 50, 15, 2, 5, 3, 8, 5, 6 };

/* Shared by every process of the soak; updated with atomic adds. */
static struct figures {
	long ops[NOPS];
	long errors;			/* syscalls that failed */
	long mismatches;
	long kids, kids_failed;
	long compactions, run_toggles, tunable_flips;
	long peak_sharing, full_scans;
	long rises, falls;		/* of pages_sharing + ksm_zero_pages */
	long merged, scans;		/* at the last sample */
	long lowest_zero;		/* ksm_zero_pages, never below 0 */
} *fig;

#define ADD(field, n)	__atomic_fetch_add(&fig->field, (n), __ATOMIC_RELAXED)

static const char *const vmstats[] = {
	"cow_ksm", "ksm_swpin_copy", "pswpout", "pswpin", "pgmigrate_success",
};
#define NVMSTATS	ARRAY_SIZE(vmstats)

static size_t ps;
static int nodes;
static time_t end;

struct region {
	char *mem, *shadow;
	int mergeable;
};

struct worker {
	int id, depth;
	unsigned int r;
	const char *last;		/* the operation, for mismatch reports */
	struct region reg[NREGIONS];
	pid_t kid;			/* a forked child still running */
	char name[32];
};

static unsigned int rnd(struct worker *w, unsigned int n)
{
	return rand_r(&w->r) % n;
}

/* A page of content: mostly one of NCOMMON, else zero or unique. */
static void gen(struct worker *w, char *page)
{
	unsigned int k = rnd(w, 10);

	if (k < 6)
		kt_fill(page, ps, 0x50a4000ULL + rnd(w, NCOMMON));
	else if (k < 8)
		memset(page, 0, ps);
	else
		kt_fill(page, ps, ((uint64_t)rand_r(&w->r) << 32) |
			rand_r(&w->r) | 1);
}

static void syscall_failed(struct worker *w, const char *what)
{
	if (!ADD(errors, 1))
		kt_note("%s %s failed: %s (noted, not a failure)", w->name,
			what, strerror(errno));
}

/* Pages [from, from + n) of region @ri, mapped at @mem, against the shadow. */
static int verify_at(struct worker *w, int ri, const char *mem, size_t from,
		     size_t n)
{
	const char *shadow = w->reg[ri].shadow;
	size_t i, off, diff;
	int bad = 0;

	for (i = from; i < from + n; i++) {
		const char *m = mem + (i - from) * ps, *s = shadow + i * ps;

		if (!memcmp(m, s, ps))
			continue;
		off = kt_page_diff(m, s, &diff);
		kt_check(0, "mismatch: %s (pid %d), region %d page %zu "
			 "(address %p) offset %zu: expected 0x%02x, actual "
			 "0x%02x; %zu bytes of the page differ; last "
			 "operation: %s", w->name, getpid(), ri, i, m, off,
			 (unsigned char)s[off], (unsigned char)m[off], diff,
			 w->last);
		bad++;
	}
	if (bad)
		ADD(mismatches, bad);
	return bad;
}

static int verify(struct worker *w, int ri, size_t from, size_t n)
{
	return verify_at(w, ri, w->reg[ri].mem + from * ps, from, n);
}

static int verify_all(struct worker *w, const char *when)
{
	int ri, bad = 0;

	w->last = when;
	for (ri = 0; ri < NREGIONS; ri++)
		bad += verify(w, ri, 0, REGPAGES);
	return bad;
}

/* A random run of at most @max pages in a random region. */
static struct region *pick(struct worker *w, int *ri, size_t *from,
			   size_t *n, size_t max)
{
	*ri = rnd(w, NREGIONS);
	*from = rnd(w, REGPAGES);
	*n = 1 + rnd(w, max);
	if (*from + *n > REGPAGES)
		*n = REGPAGES - *from;
	return &w->reg[*ri];
}

static void op_write(struct worker *w)
{
	char page[4096];
	struct region *g;
	size_t from, n, i;
	int ri;

	g = pick(w, &ri, &from, &n, 8);
	verify(w, ri, from, n);
	for (i = from; i < from + n; i++) {
		if (rnd(w, 4)) {
			gen(w, page);
			memcpy(g->mem + i * ps, page, ps);
			memcpy(g->shadow + i * ps, page, ps);
		} else {
			kt_poke(g->mem, g->shadow, i * ps + rnd(w, ps),
				(char)rnd(w, 256));
		}
	}
}

static void work(struct worker *w, long budget);

static void reap(struct worker *w, int block)
{
	int status;

	if (!w->kid ||
	    waitpid(w->kid, &status, block ? 0 : WNOHANG) != w->kid)
		return;
	kt_forget(w->kid);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		kt_check(0, "%s: forked child %d failed (wait status 0x%x)",
			 w->name, w->kid, status);
		ADD(kids_failed, 1);
	}
	w->kid = 0;
}

/* The child checks its copy, works on its own for a while and exits. */
static void op_fork(struct worker *w)
{
	pid_t pid;

	if (w->kid || w->depth >= MAXDEPTH)
		return;
	pid = kt_fork();
	if (pid) {
		w->kid = pid;
		ADD(kids, 1);
		return;
	}
	w->depth++;
	w->r ^= getpid() * 2654435761U;
	snprintf(w->name + strlen(w->name), sizeof(w->name) - strlen(w->name),
		 ".%d", w->depth);
	verify_all(w, "fork (the child's inherited copy)");
	work(w, 50 + rnd(w, 300));
	reap(w, 1);
	verify_all(w, "the forked child's last check");
	kt_child_exit();
}

/* munmap part of a region and map fresh memory in its place. */
static void op_remap(struct worker *w)
{
	char page[4096], *a;
	struct region *g;
	size_t from, n, i;
	int ri;

	g = pick(w, &ri, &from, &n, MAXRUN);
	a = g->mem + from * ps;
	if (munmap(a, n * ps))
		kt_die("munmap");
	if (mmap(a, n * ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != a)
		kt_die("mmap(MAP_FIXED) after munmap");
	if (g->mergeable && madvise(a, n * ps, MADV_MERGEABLE))
		syscall_failed(w, "madvise(MADV_MERGEABLE)");
	memset(g->shadow + from * ps, 0, n * ps);
	for (i = from; i < from + n; i++) {
		if (rnd(w, 3))
			continue;	/* stays untouched: reads the zero page */
		gen(w, page);
		memcpy(g->mem + i * ps, page, ps);
		memcpy(g->shadow + i * ps, page, ps);
	}
}

/* A hole of @len bytes to move memory into. */
static char *hole(size_t len)
{
	char *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED)
		kt_die("mmap(PROT_NONE)");
	return p;
}

/*
 * Move a whole region.  mremap() moves one VMA only: when toggles and
 * remaps have split the region, a run of it inside one VMA moves away,
 * is checked there and moves back.
 */
static void op_mremap(struct worker *w)
{
	size_t len = REGPAGES * ps, from, n;
	struct region *g;
	char *to, *m;
	int ri;

	g = pick(w, &ri, &from, &n, MAXRUN);
	to = hole(len);
	m = mremap(g->mem, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (m != MAP_FAILED) {
		g->mem = m;
		verify(w, ri, 0, REGPAGES);
		return;
	}
	if (errno != EFAULT)
		kt_die("mremap of a whole region");
	munmap(to, len);
	for (;; n = (n + 1) / 2) {
		to = hole(n * ps);
		m = mremap(g->mem + from * ps, n * ps, n * ps,
			   MREMAP_MAYMOVE | MREMAP_FIXED, to);
		if (m != MAP_FAILED)
			break;
		munmap(to, n * ps);
		if (errno != EFAULT || n == 1)
			kt_die("mremap of a run of pages");
	}
	verify_at(w, ri, m, from, n);
	if (mremap(m, n * ps, n * ps, MREMAP_MAYMOVE | MREMAP_FIXED,
		   g->mem + from * ps) != g->mem + from * ps)
		kt_die("mremap back");
	verify(w, ri, from, n);
}

static void op_toggle(struct worker *w)
{
	struct region *g;
	size_t from, n;
	int ri, on;

	g = pick(w, &ri, &from, &n, MAXRUN);
	if (rnd(w, 3)) {		/* the whole region */
		from = 0;
		n = REGPAGES;
		g->mergeable = !g->mergeable;
		on = g->mergeable;
	} else {
		on = rnd(w, 2);
	}
	if (madvise(g->mem + from * ps, n * ps,
		    on ? MADV_MERGEABLE : MADV_UNMERGEABLE))
		syscall_failed(w, on ? "madvise(MADV_MERGEABLE)" :
			       "madvise(MADV_UNMERGEABLE)");
	if (!on)
		verify(w, ri, from, n);
}

static void op_pageout(struct worker *w)
{
	struct region *g;
	size_t from, n;
	int ri;

	g = pick(w, &ri, &from, &n, REGPAGES);
	if (madvise(g->mem + from * ps, n * ps, MADV_PAGEOUT))
		syscall_failed(w, "madvise(MADV_PAGEOUT)");
	if (!rnd(w, 3))
		verify(w, ri, from, n);	/* swaps them in again */
}

static void op_migrate(struct worker *w)
{
	int node = rnd(w, 2), target[MAXRUN], status[MAXRUN], ri;
	unsigned long mask = 1UL << node;
	void *pages[MAXRUN];
	struct region *g;
	size_t from, n, i;

	if (nodes < 2)
		return;
	g = pick(w, &ri, &from, &n, MAXRUN);
	if (rnd(w, 2)) {
		for (i = 0; i < n; i++) {
			pages[i] = g->mem + (from + i) * ps;
			target[i] = node;
		}
		if (syscall(SYS_move_pages, 0, n, pages, target, status,
			    KT_MPOL_MF_MOVE_ALL) < 0)
			syscall_failed(w, "move_pages");
	} else {
		if (syscall(SYS_mbind, g->mem + from * ps, n * ps, MPOL_BIND,
			    &mask, 64UL, KT_MPOL_MF_MOVE_ALL))
			syscall_failed(w, "mbind(MPOL_BIND)");
		if (syscall(SYS_mbind, g->mem + from * ps, n * ps,
			    MPOL_DEFAULT, NULL, 0UL, 0))
			syscall_failed(w, "mbind(MPOL_DEFAULT)");
	}
	verify(w, ri, from, n);
}

static int pick_op(struct worker *w)
{
	int sum = 0, op, k;

	for (op = 0; op < NOPS; op++)
		sum += op_weight[op];
	k = rnd(w, sum);
	for (op = 0; k >= op_weight[op]; op++)
		k -= op_weight[op];
	return op;
}

/* Random operations until the end, or @budget of them (a child). */
static void work(struct worker *w, long budget)
{
	static void (*const fn[NOPS])(struct worker *) = {
		[OP_WRITE] = op_write, [OP_FORK] = op_fork,
		[OP_REMAP] = op_remap, [OP_MREMAP] = op_mremap,
		[OP_TOGGLE] = op_toggle, [OP_PAGEOUT] = op_pageout,
		[OP_MIGRATE] = op_migrate,
	};
	int op, ri;

	while (time(NULL) < end && budget--) {
		op = pick_op(w);
		w->last = op_name[op];
		if (op == OP_VERIFY) {
			ri = rnd(w, NREGIONS);
			verify(w, ri, 0, REGPAGES);
		} else {
			fn[op](w);
		}
		ADD(ops[op], 1);
		reap(w, 0);
		usleep(rnd(w, 1000));	/* give ksmd a chance to merge */
	}
}

static void worker(int id, struct kt_proc *p, unsigned int seed)
{
	struct worker w = { .id = id, .r = seed + id * 7919 };
	char page[4096];
	int ri;
	size_t i;

	snprintf(w.name, sizeof(w.name), "worker %d", id);
	for (ri = 0; ri < NREGIONS; ri++) {
		struct region *g = &w.reg[ri];

		g->mem = kt_map(REGPAGES);
		for (i = 0; i < REGPAGES; i++) {
			gen(&w, page);
			memcpy(g->mem + i * ps, page, ps);
		}
		g->shadow = kt_shadow(g->mem, REGPAGES);
		if (madvise(g->mem, REGPAGES * ps, MADV_MERGEABLE))
			kt_die("madvise(MADV_MERGEABLE)");
		g->mergeable = 1;
	}
	kt_put(p->up, 0);
	work(&w, -1);
	reap(&w, 1);
	verify_all(&w, "the final check");
	kt_put(p->up, 0);
	if (kt_get(p->down) == 1) {
		verify_all(&w, "the check after run=2");
		kt_put(p->up, 0);
	}
	kt_child_exit();
}

/*
 * Sample the counters (the controller, then main once at the end): peak
 * pages_sharing, full scans (run=2 starts their count again) and the
 * rises and falls of pages_sharing + ksm_zero_pages, what merging saves.
 */
static void sample(void)
{
	long sharing = ksm_get("pages_sharing"), now;
	long zero = ksm_get("ksm_zero_pages"), merged = sharing + zero;

	if (zero < fig->lowest_zero) {
		if (!fig->lowest_zero)
			kt_note("ksm_zero_pages is %ld", zero);
		fig->lowest_zero = zero;
	}
	if (sharing > fig->peak_sharing)
		fig->peak_sharing = sharing;
	if (merged > fig->merged)
		fig->rises += merged - fig->merged;
	else
		fig->falls += fig->merged - merged;
	fig->merged = merged;
	now = ksm_get("full_scans");
	fig->full_scans += now >= fig->scans ? now - fig->scans : now;
	fig->scans = now;
}

static void flip(const char *tunable)
{
	ksm_set_long(tunable, !ksm_get(tunable));
	fig->tunable_flips++;
}

/*
 * Compaction, run=1 -> 2 -> 1, tunables, and the counters' samples.
 * run=2 unmerges everything: it comes again only after 5 to 20 s and
 * MERGE_SCANS full scans, so that most of the time the workers work on
 * merged pages however slowly ksmd goes (the debug kernel under TCG).
 */
#define MERGE_SCANS	3

static void controller(unsigned int r)
{
	time_t now, compact = 0, run = time(NULL) + 5, tune = run + 3;
	long scans = 0;
	int err;

	kt_who = "controller: ";
	while ((now = time(NULL)) < end) {
		sample();
		if (now >= compact) {
			kt_write("/proc/sys/vm/compact_memory", "1");
			fig->compactions++;
			compact = now + 1 + rand_r(&r) % 3;
		}
		if (now >= run && fig->full_scans >= scans + MERGE_SCANS) {
			err = ksm_set("run", "2");
			if (err)
				kt_note("run=2: %s", strerror(-err));
			sample();
			usleep(200000 + rand_r(&r) % 800000);
			ksm_must_set("run", 1);
			fig->run_toggles++;
			run = time(NULL) + 5 + rand_r(&r) % 15;
			scans = fig->full_scans;
		}
		if (now >= tune) {
			flip(rand_r(&r) % 2 ? "smart_scan" : "use_zero_pages");
			tune = now + 3 + rand_r(&r) % 10;
		}
		usleep(100000);
	}
	sample();
	kt_child_exit();
}

/*
 * COMMAND with "--timeout SECONDSs" added, in a child, without
 * CAP_SYS_ADMIN: stress-ng's madvise stressor would MADV_HWPOISON its own
 * pages (then fail on the SIGBUS, or poison a KSM page the workers map).
 */
static pid_t spawn_cmd(char **argv, int seconds)
{
	char **args, secs[32];
	int n = 0;
	pid_t pid;

	while (argv[n])
		n++;
	args = calloc(n + 3, sizeof(*args));
	if (!args)
		kt_die("calloc");
	memcpy(args, argv, n * sizeof(*args));
	snprintf(secs, sizeof(secs), "%ds", seconds);
	args[n] = "--timeout";
	args[n + 1] = secs;
	pid = kt_fork();
	if (!pid) {
		if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0))
			kt_die("prctl(PR_CAPBSET_DROP)");
		execvp(args[0], args);
		kt_die(args[0]);
	}
	free(args);
	return pid;
}

int main(int argc, char **argv)
{
	struct kt_proc kid[NWORKERS];
	long before[NVMSTATS], after[NVMSTATS], ops = 0;
	int seconds = kt_seconds(argc, argv, "ksm.soak=", 60), i, rc, bad = 0;
	unsigned int seed = time(NULL) ^ getpid() << 16;
	pid_t ctl, cmd = 0;
	char **extra = NULL;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--") && i + 1 < argc)
			extra = argv + i + 1;
	ksm_begin();
	ps = kt_ps();
	if (ps != 4096)
		kt_skip("pages are not 4 KiB");
	nodes = access("/sys/devices/system/node/node1", F_OK) ? 1 : 2;
	fig = kt_shared(sizeof(*fig));
	fig->scans = ksm_get("full_scans");
	for (i = 0; i < (int)NVMSTATS; i++)
		before[i] = kt_vmstat(vmstats[i]);
	kt_note("%d s, %d workers x %d regions x %d pages, %d NUMA node(s), "
		"swap %s, seed %u", seconds, NWORKERS, NREGIONS, REGPAGES,
		nodes, kt_vmstat("pswpout") < 0 ? "none" : "on", seed);
	ksm_go(4000, 0);
	end = time(NULL) + seconds;
	i = kt_spawn_ready(kid, NWORKERS);
	if (i >= 0)
		worker(i, &kid[i], seed);
	ctl = kt_fork();
	if (!ctl)
		controller(seed);
	if (extra) {
		kt_note("running alongside: %s ... --timeout %ds", extra[0],
			seconds);
		cmd = spawn_cmd(extra, seconds);
	}

	for (i = 0; i < NWORKERS; i++)
		if (kt_get(kid[i].up) != 0)
			bad++;
	kt_check(kt_join(ctl) == 0, "the controller ran to the end");
	if (cmd) {
		rc = kt_join(cmd);
		kt_check(rc == 0, "%s exited with %d", extra[0], rc);
	}
	sample();
	ksm_print("at the end");
	if (ksm_set("run", "2"))
		kt_check(0, "run=2 refused");
	ksm_check_zero("run=2 with every worker still mapping its pages");
	for (i = 0; i < NWORKERS; i++)
		if (kt_ask(&kid[i], 1) != 0)
			bad++;
	for (i = 0; i < NWORKERS; i++)
		if (kt_finish(&kid[i]) != 0)
			bad++;
	kt_check(!bad, "every worker ran to the end and passed its checks");

	for (i = 0; i < (int)NVMSTATS; i++)
		after[i] = kt_vmstat(vmstats[i]) - before[i];
	for (i = 0; i < NOPS; i++)
		ops += fig->ops[i];
	printf("figures: %ld operations (write %ld, verify %ld, fork %ld, "
	       "remap %ld, mremap %ld, toggle %ld, pageout %ld, migrate "
	       "%ld), %ld forked children, %ld compactions, %ld run "
	       "1->2->1, %ld tunable flips, %ld syscall errors; peak "
	       "pages_sharing %ld, full_scans %ld; pages merged %ld and "
	       "unmerged %ld (sampled rises and falls of pages_sharing + "
	       "ksm_zero_pages), cow_ksm %ld, ksm_swpin_copy %ld; swapped "
	       "out %ld, in %ld; migrated %ld; mismatches %ld\n",
	       ops, fig->ops[OP_WRITE], fig->ops[OP_VERIFY],
	       fig->ops[OP_FORK], fig->ops[OP_REMAP], fig->ops[OP_MREMAP],
	       fig->ops[OP_TOGGLE], fig->ops[OP_PAGEOUT],
	       fig->ops[OP_MIGRATE], fig->kids, fig->compactions,
	       fig->run_toggles, fig->tunable_flips, fig->errors,
	       fig->peak_sharing, fig->full_scans, fig->rises, fig->falls,
	       after[0], after[1], after[2], after[3], after[4],
	       fig->mismatches);
	kt_check(fig->mismatches == 0, "no page ever differed from its shadow");
	kt_check(fig->peak_sharing > 0, "pages were merged");
	kt_check(fig->lowest_zero == 0, "ksm_zero_pages never went below 0 "
		 "(lowest sampled: %ld)", fig->lowest_zero);
	return kt_exit();
}
