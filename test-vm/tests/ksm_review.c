// SPDX-License-Identifier: GPL-2.0
/*
 * Findings of the outside review of the engine, one subcommand each.
 * Each one failed on the engine it was written against; see the commit
 * that added it.
 *
 *   ksm_review orphan   a KSM page that a failed merge left behind must
 *                       still be known to ksmd: counted, walkable by
 *                       rmap, migratable
 *   fork-fail           a fork that fails half-way (an injected allocation
 *                       failure) leaves ksm_zero_pages exact
 *   flood               thousands of pages of different content and equal
 *                       hash cost ksmd linear work per pass, and other
 *                       pages still merge meanwhile
 */
#define _GNU_SOURCE
#include <sys/uio.h>
#include "ktest.h"

static size_t ps;

/* ---- orphan: a fork sibling keeps the first page of a failed pair --- */

#define NORPHAN	32

/* Page @i of every process here: the same content in each of them. */
static void fill_orphans(char *mem)
{
	size_t i;

	for (i = 0; i < NORPHAN; i++)
		kt_fill(mem + i * ps, ps, 0x0f0f0000 + i);
}

/* KSM pages among @n pages of @pid from @addr, by /proc/kpageflags. */
static int ksm_pages_of(pid_t pid, const char *addr, size_t n)
{
	uint64_t pfn[NORPHAN];
	size_t i;
	int nr = 0;

	kt_pfns_of(pid, addr, n, pfn);
	for (i = 0; i < n; i++)
		nr += pfn[i] && (kt_kpageflags(pfn[i]) & KT_KPF_KSM);
	return nr;
}

struct orphan_view {
	pid_t pid;
	char *mem;
};

/* Every KSM page the sibling maps is one ksmd counts for it. */
static int sibling_counted(void *arg)
{
	struct orphan_view *v = arg;
	int ksm = ksm_pages_of(v->pid, v->mem, NORPHAN);

	return ksm > 0 && kt_ksm_stat(v->pid, "ksm_merging_pages") == ksm;
}

/*
 * Merging two pages makes the one ksmd looks at later a KSM page in place,
 * then maps the other one onto it.  Here the other one cannot be merged
 * (a pipe holds a reference on it: -EBUSY), while the first is also mapped
 * by a fork child.  Whatever the engine does about the failed second half,
 * the child must not be left with a KSM page that no stable node owns:
 * ksmd would never look at it again, and reclaim, migration and memory
 * failure could not find its mappings.  So each KSM page the child maps
 * must become one of its counted merging pages, and must migrate.
 *
 * ksmd visits mms in the order they registered (after run=2 emptied the
 * cursor): Q (the page with the pipe reference) first, then P, then P's
 * child C.
 */
static int orphan(void)
{
	char *mem, *shadow;
	struct kt_proc q, p;
	struct iovec iov;
	int fds[2], ksm, numa = ksm_numa();
	size_t i;
	pid_t c;

	ksm_must_set("run", 2);
	mem = kt_map(NORPHAN);
	fill_orphans(mem);
	shadow = kt_shadow(mem, NORPHAN);

	if (!kt_spawn(&q)) {
		/* Q: its pages are held by a pipe, so they never merge */
		if (pipe(fds) || fcntl(fds[1], F_SETPIPE_SZ, NORPHAN * ps) < 0)
			kt_die("pipe");
		if (madvise(mem, NORPHAN * ps, MADV_MERGEABLE))
			kt_die("madvise");
		for (i = 0; i < NORPHAN; i++) {
			iov.iov_base = mem + i * ps;
			iov.iov_len = ps;
			if (vmsplice(fds[1], &iov, 1, 0) != (ssize_t)ps)
				kt_die("vmsplice");
		}
		kt_put(q.up, 0);
		kt_get(q.down);
		kt_check(!kt_diff(mem, shadow, NORPHAN, "Q"), "Q's data");
		kt_put(q.up, 0);
		kt_child_exit();
	}
	kt_check(kt_get(q.up) == 0, "Q holds its pages in a pipe");

	if (!kt_spawn(&p)) {
		/* P, then its child C, which only keeps what it inherited */
		if (madvise(mem, NORPHAN * ps, MADV_MERGEABLE))
			kt_die("madvise");
		c = kt_fork();
		if (!c) {
			pause();
			_exit(0);
		}
		kt_put(p.up, c);
		kt_get(p.down);
		kt_check(!kt_diff(mem, shadow, NORPHAN, "P"), "P's data");
		kill(c, SIGKILL);
		kt_join(c);
		kt_put(p.up, 0);
		kt_child_exit();
	}
	c = kt_get(p.up);
	kt_check(c > 0, "P and its child are set up");

	ksm_go(1000, 10);
	{
		struct orphan_view v = { c, mem };

		kt_check(!ksm_wait_for(sibling_counted, &v, 10, 120),
			 "each KSM page P's child maps is counted for it "
			 "(%d KSM pages, ksm_merging_pages %ld)",
			 ksm_pages_of(c, mem, NORPHAN),
			 kt_ksm_stat(c, "ksm_merging_pages"));
	}
	ksm_print("after the failed merges");
	ksm = ksm_pages_of(c, mem, NORPHAN);
	kt_check(ksm > 0, "the failed merges left KSM pages (%d): the test "
		 "exercised its case", ksm);

	if (numa) {
		/* Migration finds every mapping of a KSM page through rmap. */
		void *addr[NORPHAN];
		int node[NORPHAN], status[NORPHAN], moved = 0, to;
		long left;

		to = kt_page_node(mem) == 0 ? 1 : 0;
		ksm_must_set("run", 0);
		for (i = 0; i < NORPHAN; i++) {
			addr[i] = mem + i * ps;
			node[i] = to;
		}
		left = syscall(SYS_move_pages, c, (unsigned long)NORPHAN,
			       addr, node, status, KT_MPOL_MF_MOVE_ALL);
		for (i = 0; i < NORPHAN; i++)
			moved += status[i] == to;
		kt_check(left == 0 && moved == NORPHAN,
			 "every page of P's child migrates to node %d "
			 "(move_pages: %ld not moved, %d on node %d)", to,
			 left, moved, to);
	} else {
		kt_note("one NUMA node: migration not checked");
	}

	kt_check(kt_ask(&p, 1) == 0 && kt_finish(&p) == 0, "P is intact");
	kt_check(kt_ask(&q, 1) == 0 && kt_finish(&q) == 0, "Q is intact");
	return kt_exit();
}

/* ---- fork-fail: a failed fork and the KSM zero pages it copied ------ */

#define NZERO		64
#define NTRAIL		24	/* VMAs behind the zero pages */
#define FI		"/sys/kernel/debug/"

static int fi_set(const char *attr, const char *file, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), FI "%s/%s", attr, file);
	return kt_write(path, val);
}

static int zero_count_is(void *arg)
{
	return ksm_get("ksm_zero_pages") == *(long *)arg;
}

/*
 * fork() copies the KSM zero pages of the parent's page tables into the
 * child's, then may still fail (an allocation for a later VMA, a fatal
 * signal), and the half-built child is torn down: the zero pages it
 * unmaps must have been counted for it first, or every such failure
 * takes them off ksm_zero_pages for good (and merge_domain, which waits
 * for the count to reach 0, refuses changes with -EBUSY for ever).
 * /proc/self/task/<tid>/fail-nth fails the n-th allocation of the next
 * system call: each n a little further into fork().
 */
static int fork_fail(void)
{
	long want = NZERO, now, drift = 0;
	int n, failed = 0, ok = 0, first_bad = 0;
	char path[64], val[16];
	char *zero, *trail[NTRAIL];
	pid_t pid;

	if (access(FI "failslab", F_OK) || access(FI "fail_page_alloc", F_OK))
		kt_skip("no failslab/fail_page_alloc (debug kernel only)");
	if (fi_set("failslab", "ignore-gfp-wait", "N") ||
	    fi_set("fail_page_alloc", "ignore-gfp-wait", "N") ||
	    fi_set("fail_page_alloc", "ignore-gfp-highmem", "N") ||
	    fi_set("fail_page_alloc", "min-order", "0") ||
	    fi_set("failslab", "verbose", "0") ||
	    fi_set("fail_page_alloc", "verbose", "0"))
		kt_die("fault injection setup");

	ksm_must_set("use_zero_pages", 1);
	zero = kt_map(NZERO);
	memset(zero, 0, NZERO * ps);
	if (madvise(zero, NZERO * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	/* VMAs that fork() copies after the zero pages: each allocates */
	for (n = 0; n < NTRAIL; n++) {
		trail[n] = mmap(NULL, ps, n & 1 ? PROT_READ :
				PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
				-1, 0);
		if (trail[n] == MAP_FAILED)
			kt_die("mmap");
	}
	ksm_go(1000, 10);
	kt_check(!ksm_wait_for(zero_count_is, &want, 5, 60),
		 "%d zero-filled pages are KSM zero pages", NZERO);
	ksm_must_set("run", 0);		/* nothing moves from here on */

	snprintf(path, sizeof(path), "/proc/self/task/%d/fail-nth",
		 (int)syscall(SYS_gettid));
	for (n = 1; n <= 400 && ok < 5; n++) {
		snprintf(val, sizeof(val), "%d", n);
		if (kt_write(path, val))
			kt_die("fail-nth");
		pid = fork();
		kt_write(path, "0");
		if (!pid)
			_exit(0);
		if (pid < 0) {
			failed++;
		} else {
			waitpid(pid, NULL, 0);
			ok++;
		}
		now = ksm_get("ksm_zero_pages");
		if (now != want && !first_bad) {
			first_bad = n;
			drift = now - want;
		}
	}
	kt_note("%d forks failed at an injected allocation, %d succeeded",
		failed, ok);
	kt_check(failed >= NTRAIL,
		 "forks failed at %d points (at least %d: the test reached "
		 "the VMAs behind the zero pages)", failed, NTRAIL);
	kt_check(ok > 0, "with the allocations past fork's, fork succeeds");
	kt_check(!first_bad, "ksm_zero_pages stays %ld across failed forks "
		 "(first off by %ld at n=%d, now %ld)", want, drift,
		 first_bad, ksm_get("ksm_zero_pages"));
	kt_check(kt_ksm_stat(0, "ksm_zero_pages") == NZERO,
		 "the parent still counts its %d (%ld)", NZERO,
		 kt_ksm_stat(0, "ksm_zero_pages"));
	munmap(zero, NZERO * ps);
	kt_check(ksm_get("ksm_zero_pages") == 0,
		 "after munmap ksm_zero_pages is 0 (%ld)",
		 ksm_get("ksm_zero_pages"));
	return kt_exit();
}

/* ---- flood: pages made to share one hash ---------------------------- */

/*
 * xxh64, as the kernel's xxhash() computes it on 64-bit.  Each 32-byte
 * stripe goes through four accumulators, acc = rotl(acc + lane * P2, 31)
 * * P1, and each step can be undone: given the accumulators before the
 * last stripe and the ones wanted after it, the last stripe's four lanes
 * follow.  So any page's first 4064 bytes can be completed into a page
 * with a chosen hash.
 */
#define XP1	11400714785074694791ULL
#define XP2	14029467366897019727ULL
#define XP3	1609587929392839161ULL
#define XP4	9650029242287828579ULL
#define XP5	2870177450012600261ULL

static uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t xround(uint64_t acc, uint64_t lane)
{
	return rotl64(acc + lane * XP2, 31) * XP1;
}

static uint64_t xmerge(uint64_t h, uint64_t v)
{
	return (h ^ xround(0, v)) * XP1 + XP4;
}

/* The accumulators after the first @stripes stripes of @w. */
static void xacc(const uint64_t *w, int stripes, uint64_t seed, uint64_t *v)
{
	int i, k;

	v[0] = seed + XP1 + XP2;
	v[1] = seed + XP2;
	v[2] = seed;
	v[3] = seed - XP1;
	for (i = 0; i < stripes; i++)
		for (k = 0; k < 4; k++)
			v[k] = xround(v[k], w[4 * i + k]);
}

/* xxh64 of a page (the length is a multiple of 32: no tail). */
static uint64_t xxh64_page(const uint64_t *w, size_t len, uint64_t seed)
{
	uint64_t v[4], h;

	xacc(w, len / 32, seed, v);
	h = rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) +
	    rotl64(v[3], 18);
	h = xmerge(xmerge(xmerge(xmerge(h, v[0]), v[1]), v[2]), v[3]);
	h += len;
	h ^= h >> 33;
	h *= XP2;
	h ^= h >> 29;
	h *= XP3;
	h ^= h >> 32;
	return h;
}

static uint64_t inverse64(uint64_t a)	/* of an odd number, mod 2^64 */
{
	uint64_t x = a;
	int i;

	for (i = 0; i < 6; i++)
		x *= 2 - a * x;
	return x;
}

/*
 * Make page @w (its first words already filled) end with the stripe that
 * brings its accumulators to @want.
 */
static void xcomplete(uint64_t *w, size_t len, uint64_t seed,
		      const uint64_t *want)
{
	uint64_t v[4], ip1 = inverse64(XP1), ip2 = inverse64(XP2), x;
	int last = len / 32 - 1, k;

	xacc(w, last, seed, v);
	for (k = 0; k < 4; k++) {
		x = rotl64(want[k] * ip1, 64 - 31);	/* undo rotl, * P1 */
		w[4 * last + k] = (x - v[k]) * ip2;
	}
}

/*
 * The seed the kernel hashes with: the debug kernel shows it in debugfs;
 * the engine before the seed was random used 0 (its debug kernel has
 * flip_bit but no hash_seed).  Anything else cannot be flooded from here.
 */
static int kernel_seed(uint64_t *seed)
{
	char buf[64];

	if (!kt_read_str("/sys/kernel/debug/ksm/hash_seed", buf, sizeof(buf))) {
		*seed = strtoull(buf, NULL, 0);
		return 0;
	}
	if (!access("/sys/kernel/debug/ksm/flip_bit", F_OK)) {
		*seed = 0;
		return 0;
	}
	return -1;
}

#define NFLOOD	3000
#define NPAIRS	64

struct pairs_view {
	char *mem;
};

static int flood_pairs_merged(void *arg)
{
	struct pairs_view *v = arg;
	uint64_t a, b;
	int k, n = 0;

	for (k = 0; k < NPAIRS; k++) {
		a = kt_pfn(v->mem + 2 * k * ps);
		b = kt_pfn(v->mem + (2 * k + 1) * ps);
		n += a && a == b;
	}
	return n == NPAIRS;
}

/* Seconds (wall clock, ms resolution) that ksmd takes for @n passes. */
static double time_scans(int n, int limit)
{
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ksm_wait_scans(n, limit))
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/*
 * A process fills NFLOOD pages with contents of one xxh64 hash under the
 * kernel's seed, all different (so none merges).  First the same pages
 * with ordinary random contents: the time of a few passes over them is
 * the reference.  Then the colliding contents: every page lands in one
 * bucket of the unstable index, and a lookup that compares each of them
 * costs O(N) page-table walks and compares, O(N^2) per pass.  The pass
 * must stay within a small factor of the reference, and NPAIRS pairs of
 * ordinary duplicates must merge meanwhile.
 */
static int flood(void)
{
	uint64_t seed, want[4], h0, *w;
	double plain, flooded;
	char *mem, *pairs;
	int i, bad = 0;

	if (kernel_seed(&seed))
		kt_skip("the hash seed is not readable (debug kernel only)");
	kt_note("hash seed %#llx", (unsigned long long)seed);

	mem = kt_map(NFLOOD);
	for (i = 0; i < NFLOOD; i++)
		kt_fill(mem + i * ps, ps, 0xf100d000 + i);
	pairs = kt_map(2 * NPAIRS);
	for (i = 0; i < 2 * NPAIRS; i++)
		kt_fill(pairs + i * ps, ps, 0x9a125000 + i / 2);
	if (madvise(mem, NFLOOD * ps, MADV_MERGEABLE) ||
	    madvise(pairs, 2 * NPAIRS * ps, MADV_MERGEABLE))
		kt_die("madvise");

	ksm_go(4000, 0);
	ksm_wait_scans(2, 300);
	plain = time_scans(3, 300);
	kt_note("3 passes over %d pages of random content: %.2f s", NFLOOD,
		plain);
	{
		struct pairs_view v = { pairs };

		kt_check(!ksm_wait_for(flood_pairs_merged, &v, 10, 300),
			 "the %d pairs merged beside random pages", NPAIRS);
	}

	/* Now the same pages, each completed to one hash. */
	ksm_must_set("run", 2);
	w = (uint64_t *)mem;
	xacc(w, ps / 32, seed, want);
	h0 = xxh64_page(w, ps, seed);
	for (i = 1; i < NFLOOD; i++) {
		w = (uint64_t *)(mem + i * ps);
		xcomplete(w, ps, seed, want);
		bad += xxh64_page(w, ps, seed) != h0;
	}
	kt_check(!bad && memcmp(mem, mem + ps, ps),
		 "%d different pages with xxh64 %#llx under the seed",
		 NFLOOD, (unsigned long long)h0);
	for (i = 0; i < 2 * NPAIRS; i++)	/* and fresh pairs */
		kt_fill(pairs + i * ps, ps, 0x9a126000 + i / 2);

	ksm_must_set("run", 1);
	ksm_wait_scans(1, 600);
	flooded = time_scans(3, 600);
	kt_note("3 passes over them with one hash: %.2f s", flooded);
	kt_check(plain > 0 && flooded > 0 && flooded < 5 * plain + 2,
		 "passes over colliding pages take %.2f s, at most 5x those "
		 "over random pages (%.2f s)", flooded, plain);
	{
		struct pairs_view v = { pairs };

		kt_check(!ksm_wait_for(flood_pairs_merged, &v, 10, 300),
			 "the %d pairs merged beside colliding pages", NPAIRS);
	}
	return kt_exit();
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";

	ksm_begin();
	ps = kt_ps();
	if (!strcmp(what, "orphan"))
		return orphan();
	if (!strcmp(what, "fork-fail"))
		return fork_fail();
	if (!strcmp(what, "flood"))
		return flood();
	kt_die("usage: ksm_review orphan|fork-fail|flood");
}
