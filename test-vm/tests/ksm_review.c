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
 *   ebusy               a page that cannot join the KSM page of its content
 *                       (-EBUSY) stays out of the unstable index, so the
 *                       next page of that content joins the KSM page
 *   mremap-swap         KSM pages made after an mremap (their page offset
 *                       is no longer their address) swap out, come back
 *                       and migrate
 *   unmerge-high-flags  MADV_UNMERGEABLE keeps the VMA flags above bit
 *                       31 (an mseal()ed VMA stays sealed)
 *   hmm-exclusive       pages a device holds exclusively (HMM's test
 *                       driver) are neither write-protected nor merged
 *   smart-pause         with smart_scan on, memory made mergeable meets
 *                       pages in a long back-off within two passes
 *   flood               thousands of pages of different content and equal
 *                       hash cost ksmd linear work per pass, and other
 *                       pages still merge meanwhile
 *   thp-zero            splitting a THP maps its zero-filled subpages to
 *                       the zero page only where that is the THP code's
 *                       own doing (an underused THP): a split for a merge
 *                       leaves them to KSM, under use_zero_pages and
 *                       counted; the zero pages of the other split are not
 *                       counted as KSM's, before or after they go
 */
#define _GNU_SOURCE
#include <sys/ioctl.h>
#include <sys/uio.h>
#include "ktest.h"

static size_t ps;

/*
 * Each process of a test maps its own pages at this address (so that the
 * parent can read their frames in /proc/<pid>/pagemap): pages filled
 * before a fork would be the same frames in every child.
 */
#define AT	((char *)0x5c0000000000UL)

/* NUMA node of page @addr of process @pid, or -errno. */
static int page_node_of(pid_t pid, void *addr)
{
	int status = -1;

	if (syscall(SYS_move_pages, pid, 1UL, &addr, NULL, &status, 0))
		return -errno;
	return status;
}

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
	char *mem, *shadow = NULL;
	struct kt_proc q, p;
	struct iovec iov;
	int fds[2], ksm, numa = ksm_numa();
	size_t i;
	pid_t c;

	ksm_must_set("run", 2);
	mem = AT;

	if (!kt_spawn(&q)) {
		/* Q: its pages are held by a pipe, so they never merge */
		kt_map_at(AT, NORPHAN);
		fill_orphans(mem);
		shadow = kt_shadow(mem, NORPHAN);
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
		kt_map_at(AT, NORPHAN);
		fill_orphans(mem);
		shadow = kt_shadow(mem, NORPHAN);
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

		to = page_node_of(c, mem) == 0 ? 1 : 0;
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
	long want = NZERO, now, drift = 0, left;
	int n, fd, failed = 0, ok = 0, first_bad = 0;
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
	/* One open file: opening it anew would allocate under fail-nth. */
	fd = open(path, O_RDWR);
	if (fd < 0)
		kt_die("fail-nth");
	for (n = 1; n <= 5000; n++) {
		snprintf(val, sizeof(val), "%d", n);
		if (pwrite(fd, val, strlen(val), 0) < 0)
			kt_die("fail-nth");
		pid = syscall(SYS_fork);
		if (!pid)
			_exit(0);
		/* Still armed: fork() had fewer than n allocations. */
		memset(val, 0, sizeof(val));
		left = pread(fd, val, sizeof(val) - 1, 0) > 0 ? atol(val) : -1;
		if (pwrite(fd, "0", 1, 0) < 0)
			kt_die("fail-nth");
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
		if (left > 0)
			break;
	}
	close(fd);
	kt_note("%d forks failed at an injected allocation, %d succeeded "
		"(fork made %d injectable calls)", failed, ok, n - 1);
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

/* ---- ebusy: stable_lookup_merge()'s fallback ------------------------------- */

#define EBUSY_SEED	0xeb05e000

struct ebusy_view {
	pid_t a, r;
	char *mem;
};

static int r_joined(void *arg)
{
	struct ebusy_view *v = arg;
	uint64_t pa, pr;

	kt_pfns_of(v->a, v->mem, 1, &pa);
	kt_pfns_of(v->r, v->mem, 1, &pr);
	return pa && pa == pr;
}

/*
 * A and B share a KSM page K of some content.  Then Q, whose page of that
 * content is held by a pipe, and R, with the same content, register in
 * that order.  Q's page cannot join K (-EBUSY); it must then stay out of
 * the unstable index, or R's page would pair with it and become a second
 * KSM page of K's content beside K, for good.  So R joins K, exactly one
 * KSM page exists, and Q's page is counted as volatile (an item in no
 * index), not unshared.
 */
static int ebusy(void)
{
	struct kt_proc k[4];
	struct ebusy_view v;
	struct iovec iov;
	int who, fds[2];
	char *mem, *shadow;

	ksm_must_set("run", 2);
	mem = AT;
	for (who = 0; who < 4; who++) {
		if (who == 2) {
			/* A and B first, merged */
			ksm_go(1000, 10);
			ksm_expect("A and B share K", 1, 1, 0);
		}
		if (kt_spawn(&k[who])) {
			kt_get(k[who].up);
			continue;
		}
		kt_map_at(AT, 1);
		kt_fill(mem, ps, EBUSY_SEED);
		if (who == 2) {		/* Q: a pipe holds the page */
			if (pipe(fds))
				kt_die("pipe");
			iov.iov_base = mem;
			iov.iov_len = ps;
			if (vmsplice(fds[1], &iov, 1, 0) != (ssize_t)ps)
				kt_die("vmsplice");
		}
		if (madvise(mem, ps, MADV_MERGEABLE))
			kt_die("madvise");
		kt_put(k[who].up, 0);
		kt_get(k[who].down);
		shadow = malloc(ps);
		kt_fill(shadow, ps, EBUSY_SEED);
		kt_check(!memcmp(mem, shadow, ps), "the page is intact");
		kt_put(k[who].up, 0);
		kt_child_exit();
	}

	v.a = k[0].pid;
	v.r = k[3].pid;
	v.mem = mem;
	kt_check(!ksm_wait_for(r_joined, &v, 10, 120),
		 "R's page joined K, the KSM page of A and B");
	kt_check(ksm_expect("one KSM page: A, B and R map it", 1, 2, 0),
		 "Q's page is in no index while it cannot join");
	kt_check(ksm_get("pages_volatile") >= 1,
		 "Q's page is counted volatile (%ld)", ksm_get("pages_volatile"));
	for (who = 0; who < 4; who++)
		kt_check(kt_ask(&k[who], 1) == 0 && kt_finish(&k[who]) == 0,
			 "process %d exits cleanly", who);
	return kt_exit();
}

/* ---- mremap-swap: KSM pages at a moved address ------------------------ */

#define NMOVE		64
#define MOVE_SEED	0x3e3a9000

enum { M_MOVE = 1, M_UNMAP, M_PAGEOUT, M_SWAPPED, M_CHECK, M_MIGRATE,
	M_ON_NODE };

static char *mv_mem, *mv_shadow;
static int mv_node;

static long mv_serve(long cmd)
{
	void *addr[NMOVE];
	int node[NMOVE], status[NMOVE];
	char *to;
	long n = 0;
	int i;

	switch (cmd) {
	case M_MOVE:	/* somewhere else, at another page offset */
		to = kt_map(NMOVE + 3);
		to = mremap(mv_mem, NMOVE * ps, NMOVE * ps,
			    MREMAP_MAYMOVE | MREMAP_FIXED, to + 3 * ps);
		if (to == MAP_FAILED)
			kt_die("mremap");
		mv_mem = to;
		return 0;
	case M_UNMAP:
		return munmap(mv_mem, NMOVE * ps);
	case M_PAGEOUT:
		return madvise(mv_mem, NMOVE * ps, MADV_PAGEOUT);
	case M_SWAPPED:
		for (i = 0; i < NMOVE; i++)
			n += kt_swapped(mv_mem + i * ps);
		return n;
	case M_CHECK:
		return kt_diff(mv_mem, mv_shadow, NMOVE, "memory");
	case M_MIGRATE:
		mv_node = kt_page_node(mv_mem) == 0 ? 1 : 0;
		for (i = 0; i < NMOVE; i++) {
			addr[i] = mv_mem + i * ps;
			node[i] = mv_node;
		}
		return syscall(SYS_move_pages, 0, (unsigned long)NMOVE, addr,
			       node, status, KT_MPOL_MF_MOVE_ALL);
	case M_ON_NODE:
		for (i = 0; i < NMOVE; i++)
			n += kt_page_node(mv_mem + i * ps) == mv_node;
		return n;
	}
	return -1;
}

static void mv_child(struct kt_proc *p)
{
	long cmd;
	int i;

	mv_mem = kt_map(NMOVE);
	for (i = 0; i < NMOVE; i++)
		kt_fill(mv_mem + i * ps, ps, MOVE_SEED + i);
	mv_shadow = kt_shadow(mv_mem, NMOVE);
	if (madvise(mv_mem, NMOVE * ps, MADV_MERGEABLE))
		kt_die("madvise");
	kt_put(p->up, 0);
	while ((cmd = kt_get(p->down)) > 0)
		kt_put(p->up, mv_serve(cmd));
	kt_child_exit();
}

/*
 * A and B hold the same NMOVE pages.  A moves its range with mremap(),
 * which unmerges it; ksmd merges it again at the new address.  Then B
 * unmaps its copy, and A alone maps the KSM pages and pushes them out
 * with MADV_PAGEOUT: reclaim must find A's mapping through rmap at its
 * new address.  They must read back intact.  Then a fresh B merges with
 * them again, and A migrates every KSM page to the other NUMA node.
 */
static int mremap_swap(void)
{
	struct kt_proc k[2];
	long out = kt_vmstat("pswpout"), n;
	int who;

	ksm_must_set("run", 2);
	for (who = 0; who < 2; who++) {
		if (!kt_spawn(&k[who]))
			mv_child(&k[who]);
		kt_get(k[who].up);
	}
	ksm_go(1000, 10);
	ksm_expect("A and B merged", NMOVE, NMOVE, 0);
	kt_check(kt_ask(&k[0], M_MOVE) == 0, "A moves its range (mremap)");
	ksm_expect("merged again at A's new address", NMOVE, NMOVE, 0);

	kt_check(kt_ask(&k[1], M_UNMAP) == 0, "B unmaps its copy");
	ksm_expect("A alone maps the KSM pages", NMOVE, 0, -1);
	kt_check(kt_ask(&k[0], M_PAGEOUT) == 0, "A pages them out");
	n = kt_ask(&k[0], M_SWAPPED);
	kt_check(n == NMOVE && kt_vmstat("pswpout") > out,
		 "%ld of %d KSM pages at the moved address went to swap", n,
		 NMOVE);
	kt_check(kt_ask(&k[0], M_CHECK) == 0, "and read back intact");
	kt_check(kt_finish(&k[1]) == 0, "B exits");

	if (!ksm_numa()) {
		kt_note("one NUMA node: migration not checked");
		kt_check(kt_finish(&k[0]) == 0, "A exits");
		return kt_exit();
	}
	if (!kt_spawn(&k[1]))
		mv_child(&k[1]);
	kt_get(k[1].up);
	ksm_expect("a new B merged with A's moved pages", NMOVE, NMOVE, 0);
	ksm_must_set("run", 0);
	n = kt_ask(&k[0], M_MIGRATE);
	kt_check(n == 0 && kt_ask(&k[0], M_ON_NODE) == NMOVE,
		 "every KSM page at the moved address migrates (move_pages "
		 "left %ld)", n);
	kt_check(kt_ask(&k[0], M_CHECK) == 0 && kt_ask(&k[1], M_CHECK) == 0,
		 "both read their pages intact");
	for (who = 0; who < 2; who++)
		kt_check(kt_finish(&k[who]) == 0, "%c exits", "AB"[who]);
	return kt_exit();
}

/* ---- unmerge-high-flags: MADV_UNMERGEABLE and VMA flags above bit 31 -- */

#ifndef SYS_mseal
#define SYS_mseal	462
#endif

/*
 * VM_MERGEABLE is bit 31.  Clearing it with "flags &= ~VM_MERGEABLE"
 * clears bits 32-63 as well if the constant is 32 bits wide: upstream
 * lost VM_UFFD_MINOR that way once its VM flags were redefined.  In 6.12
 * it is BIT(31), an unsigned long, and this guards it.  mseal() sets
 * VM_SEALED (bit 63) on an anonymous VMA: after MADV_UNMERGEABLE the VMA
 * must still be sealed, so munmap() still fails with EPERM.
 */
static int unmerge_high_flags(void)
{
	char *mem = kt_map(4);
	int i;

	for (i = 0; i < 4; i++)
		kt_fill(mem + i * ps, ps, 77);
	if (madvise(mem, 4 * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	if (syscall(SYS_mseal, mem, 4 * ps, 0))
		kt_skip("no mseal()");
	kt_check(kt_vma_has_flag(mem, 4 * ps, "sl"), "the VMA is sealed");
	ksm_go(1000, 10);
	ksm_expect("merged", 1, 3, 0);
	kt_check(madvise(mem, 4 * ps, MADV_UNMERGEABLE) == 0,
		 "MADV_UNMERGEABLE on the sealed VMA");
	kt_check(kt_vma_has_flag(mem, 4 * ps, "sl"),
		 "the VMA is still sealed (VmFlags sl)");
	kt_check(!kt_vma_has_flag(mem, 4 * ps, "mg"),
		 "and no longer mergeable");
	kt_check(munmap(mem, 4 * ps) == -1 && errno == EPERM,
		 "munmap() of the sealed VMA still fails with EPERM");
	ksm_expect("unmerged", 0, 0, 0);
	return kt_exit();
}

/* ---- hmm-exclusive: device-exclusive entries -------------------------- */

/* lib/test_hmm_uapi.h */
struct hmm_dmirror_cmd {
	uint64_t addr, ptr, npages, cpages, faults;
};

#define HMM_DMIRROR_EXCLUSIVE		_IOWR('H', 0x05, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_CHECK_EXCLUSIVE	_IOWR('H', 0x06, struct hmm_dmirror_cmd)
#define NHMM	16

static int hmm_ioctl(int fd, unsigned long req, char *addr, size_t npages,
		     char *buf)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)addr, .ptr = (uintptr_t)buf,
		.npages = npages,
	};

	return ioctl(fd, req, &cmd) ? -errno : 0;
}

/*
 * The HMM test driver makes the first half of NHMM equal mergeable pages
 * device-exclusive: their PTEs become non-present entries that a CPU
 * access turns back (and the device loses its atomic mapping through an
 * MMU notifier).  ksmd must leave them alone, neither write-protect nor
 * merge them, so the device keeps its mapping; the other half merges.
 * Once the CPU reads them back, they are intact and merge too.
 */
static int hmm_exclusive(void)
{
	char *mem, *shadow, *buf;
	int fd, i;

	fd = open("/dev/hmm_dmirror0", O_RDWR);
	if (fd < 0)
		kt_skip("no /dev/hmm_dmirror0 (CONFIG_TEST_HMM)");
	mem = kt_map(NHMM);
	for (i = 0; i < NHMM; i++)
		kt_fill(mem + i * ps, ps, 0x4d4d0000);
	shadow = kt_shadow(mem, NHMM);
	buf = malloc(NHMM * ps);
	if (madvise(mem, NHMM * ps, MADV_MERGEABLE))
		kt_die("madvise");
	kt_check(!hmm_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, mem, NHMM / 2, buf),
		 "%d pages made device-exclusive", NHMM / 2);
	kt_check(hmm_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, mem, NHMM / 2,
			   buf) == -EPERM, "the device holds them");

	ksm_go(1000, 10);
	ksm_expect("the other half merged", 1, NHMM / 2 - 1, 0);
	ksm_wait_scans(3, 60);
	kt_check(hmm_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, mem, NHMM / 2,
			   buf) == -EPERM,
		 "after 3 passes the device still holds them: ksmd neither "
		 "write-protected nor merged them");
	kt_check(ksm_get("pages_sharing") == NHMM / 2 - 1,
		 "none of them joined the KSM page");

	kt_check(!kt_diff(mem, shadow, NHMM, "memory"),
		 "the CPU reads every page intact");
	kt_check(hmm_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, mem, NHMM / 2,
			   buf) == 0, "which took them back from the device");
	ksm_expect("then all of them merge", 1, NHMM - 1, 0);
	close(fd);
	return kt_exit();
}

/* ---- smart-pause: new mergeable memory and smart scan's back-off ---- */

#define NLATE	8

/*
 * NLATE pages become mergeable one after the other, and stay alone for 50
 * passes, so that smart scan looks at each only once in nine passes, each
 * in other passes.  Then NLATE pages of the same
 * contents become mergeable: within two full scans every pair must have
 * merged, as the
 * kernel's ksm_tests -N expects.  Without a pause of the back-off, most
 * of the old pages sit out both passes.
 */
static int smart_pause(void)
{
	char *late = kt_map(NLATE), *early = kt_map(NLATE);
	uint64_t a, b;
	int i, n = 0;

	for (i = 0; i < NLATE; i++) {
		kt_fill(early + i * ps, ps, 0x5a4a0000 + i);
		kt_fill(late + i * ps, ps, 0x5a4a0000 + i);
	}
	ksm_go(1000, 10);
	ksm_must_set("smart_scan", 1);
	/* One at a time: their back-offs run out of step. */
	for (i = 0; i < NLATE; i++) {
		if (madvise(early + i * ps, ps, MADV_MERGEABLE))
			kt_die("madvise");
		ksm_wait_scans(3, 60);
	}
	kt_check(!ksm_wait_scans(50, 300), "50 passes over the early pages");
	kt_check(ksm_get("pages_skipped") > 0,
		 "smart scan skips them by now (%ld skipped)",
		 ksm_get("pages_skipped"));
	if (madvise(late, NLATE * ps, MADV_MERGEABLE))
		kt_die("madvise");
	ksm_wait_scans(2, 60);
	for (i = 0; i < NLATE; i++) {
		a = kt_pfn(early + i * ps);
		b = kt_pfn(late + i * ps);
		n += a && a == b;
	}
	kt_check(n == NLATE, "%d of %d pairs merged within two full scans "
		 "of the late pages' madvise", n, NLATE);
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
	ksm_wait_scans(1, 300);
	flooded = time_scans(3, 400);
	kt_note("3 passes over them with one hash: %.2f s", flooded);
	kt_check(plain > 0 && flooded > 0 && flooded < 8 * plain + 2,
		 "passes over colliding pages take %.2f s, at most 8x those "
		 "over random pages (%.2f s)", flooded, plain);
	{
		struct pairs_view v = { pairs };

		kt_check(!ksm_wait_for(flood_pairs_merged, &v, 10, 300),
			 "the %d pairs merged beside colliding pages", NPAIRS);
	}
	return kt_exit();
}

/* ---- thp-zero: zero-filled subpages of a THP that is split ---------- */

#define THP_DIR "/sys/kernel/mm/transparent_hugepage/"
#define KT_KPF_ZERO_PAGE (1ULL << 24)

static const char *const thp_knobs[] = {
	THP_DIR "enabled", THP_DIR "khugepaged/max_ptes_none",
	THP_DIR "shrink_underused",
};
#define NTHP_KNOBS ARRAY_SIZE(thp_knobs)
static char thp_saved[NTHP_KNOBS][64];

static void thp_restore(void)
{
	char *v, *end;
	size_t i;

	for (i = 0; i < NTHP_KNOBS; i++) {
		if (!thp_saved[i][0])
			continue;
		v = thp_saved[i];
		/* "always [madvise] never": the word in brackets */
		if (strchr(v, '[')) {
			v = strchr(v, '[') + 1;
			end = strchr(v, ']');
			if (end)
				*end = 0;
		}
		kt_write(thp_knobs[i], v);
		thp_saved[i][0] = 0;
	}
}

/*
 * One PMD-mapped THP, mergeable, as a fresh fault makes it (all zero);
 * its size is *@len.  Skips when the kernel has no THP to give.
 */
static char *thp_zero_map(size_t *len)
{
	long hp = kt_read_long(THP_DIR "hpage_pmd_size");
	char *raw, *p;

	if (hp <= 0)
		kt_skip("no transparent huge pages in this kernel");
	raw = mmap(NULL, 2 * hp, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		kt_die("mmap");
	p = (char *)(((uintptr_t)raw + hp - 1) & ~(uintptr_t)(hp - 1));
	if (madvise(p, hp, MADV_HUGEPAGE) || madvise(p, hp, MADV_MERGEABLE))
		kt_die("madvise");
	p[0] = 1;	/* a write fault: a huge page, not the huge zero page */
	p[0] = 0;
	if (kt_smaps_kb(p, hp, "AnonHugePages") != hp / 1024)
		kt_skip("no THP for a 2 MiB-aligned MADV_HUGEPAGE range");
	*len = hp;
	return p;
}

/* Subpages of [@p, @p + @n pages) that map the zero page / a KSM page. */
static void thp_zero_census(const char *p, size_t n, int *zero, int *ksm)
{
	uint64_t *pfn = calloc(n, sizeof(*pfn)), f;
	size_t i;

	if (!pfn)
		kt_die("calloc");
	kt_pfns(p, n, pfn);
	*zero = *ksm = 0;
	for (i = 0; i < n; i++) {
		f = pfn[i] ? kt_kpageflags(pfn[i]) : 0;
		*zero += !!(f & KT_KPF_ZERO_PAGE);
		*ksm += !!(f & KT_KPF_KSM);
	}
	free(pfn);
}

#define THP_PAIRS	64

/*
 * ksmd splits a THP to merge its subpages.  In 6.12 every split of an
 * anonymous THP maps the zero-filled subpages to the zero page, plain
 * (not marked as KSM's): with use_zero_pages=0 they would then never
 * merge into a KSM page, with use_zero_pages=1 never be counted in
 * ksm_zero_pages, and either way KSM would have freed memory that no
 * counter shows.  They must be merged as use_zero_pages says.
 */
static void thp_zero_merge(int use_zero)
{
	size_t hp, n, i, nzero;
	char *p, *shadow, when[64];
	int zero, ksm;

	p = thp_zero_map(&hp);
	n = hp / ps;
	nzero = n - 2 * THP_PAIRS;
	for (i = 0; i < 2 * THP_PAIRS; i++)
		kt_fill(p + i * ps, ps, 0x7e170000 + i / 2);
	shadow = kt_shadow(p, n);
	ksm_must_set("use_zero_pages", use_zero);
	ksm_go(n, 0);
	snprintf(when, sizeof(when), "use_zero_pages=%d", use_zero);
	if (use_zero) {
		ksm_expect(when, THP_PAIRS, THP_PAIRS, 0);
		kt_check(ksm_get("ksm_zero_pages") == (long)nzero &&
			 kt_ksm_stat(0, "ksm_zero_pages") == (long)nzero,
			 "%s: the %zu zero subpages are KSM zero pages "
			 "(ksm_zero_pages %ld, ksm_stat %ld)", when, nzero,
			 ksm_get("ksm_zero_pages"),
			 kt_ksm_stat(0, "ksm_zero_pages"));
	} else {
		/* the zero subpages fill KSM pages of max_page_sharing each */
		long per = ksm_get("max_page_sharing");
		long k = (nzero + per - 1) / per;

		ksm_expect(when, THP_PAIRS + k, THP_PAIRS + nzero - k, 0);
	}
	thp_zero_census(p, n, &zero, &ksm);
	kt_note("%s: %d subpages map the zero page, %d a KSM page", when,
		zero, ksm);
	kt_check(use_zero ? zero == (int)nzero && ksm == 2 * THP_PAIRS :
		 zero == 0 && ksm == (int)n,
		 "%s: the zero subpages went where use_zero_pages says", when);
	kt_check(!kt_diff(p, shadow, n, when), "%s: contents intact", when);
	munmap(p, hp);
	free(shadow);
	kt_check(ksm_get("ksm_zero_pages") == 0,
		 "%s: ksm_zero_pages is 0 after munmap (%ld)", when,
		 ksm_get("ksm_zero_pages"));
	ksm_must_set("run", 2);
}

/*
 * The deferred-split shrinker splits a THP that is mostly zero and maps
 * those subpages to the zero page: the THP code's own saving, not KSM's.
 * In a mergeable VMA those zero pages must not count as KSM zero pages,
 * neither while mapped nor when they go.
 */
static void thp_zero_underused(void)
{
	long before, after;
	size_t hp, n, i;
	char *p, *shadow;
	int zero, ksm;

	ksm_must_set("run", 0);
	if (kt_write(THP_DIR "khugepaged/max_ptes_none", "64") ||
	    kt_write(THP_DIR "shrink_underused", "1"))
		kt_skip("the underused-THP shrinker cannot be set up");
	p = thp_zero_map(&hp);
	n = hp / ps;
	for (i = 0; i < 8; i++)
		kt_fill(p + i * ps, ps, 0x7e180000 + i / 2);
	shadow = kt_shadow(p, n);
	before = kt_vmstat("thp_underused_split_page");
	kt_write("/proc/sys/vm/drop_caches", "2");	/* runs the shrinkers */
	after = kt_vmstat("thp_underused_split_page");
	thp_zero_census(p, n, &zero, &ksm);
	kt_check(after > before && zero == (int)n - 8,
		 "the shrinker split the underused THP (%ld split) and mapped "
		 "%d of its %zu zero subpages to the zero page", after - before,
		 zero, n - 8);

	ksm_must_set("use_zero_pages", 1);
	ksm_go(n, 0);
	ksm_expect("after the shrinker's split", 4, 4, 0);
	kt_check(ksm_get("ksm_zero_pages") == 0 &&
		 kt_ksm_stat(0, "ksm_zero_pages") == 0,
		 "the shrinker's zero pages are not KSM's (ksm_zero_pages %ld, "
		 "ksm_stat %ld)", ksm_get("ksm_zero_pages"),
		 kt_ksm_stat(0, "ksm_zero_pages"));
	kt_check(!kt_diff(p, shadow, n, "underused"), "contents intact");
	munmap(p, hp);
	free(shadow);
	kt_check(ksm_get("ksm_zero_pages") == 0,
		 "ksm_zero_pages is 0 after munmap (%ld)",
		 ksm_get("ksm_zero_pages"));
	ksm_must_set("run", 2);
}

static int thp_zero(void)
{
	size_t i;

	for (i = 0; i < NTHP_KNOBS; i++)
		if (kt_read_str(thp_knobs[i], thp_saved[i],
				sizeof(thp_saved[i])))
			thp_saved[i][0] = 0;
	atexit(thp_restore);
	if (!thp_saved[0][0])
		kt_skip("no transparent huge pages in this kernel");
	kt_write(THP_DIR "enabled", "madvise");
	/* no underused splits behind the test's back */
	kt_write(THP_DIR "khugepaged/max_ptes_none", "511");

	thp_zero_merge(0);
	thp_zero_merge(1);
	thp_zero_underused();
	thp_restore();
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
	if (!strcmp(what, "ebusy"))
		return ebusy();
	if (!strcmp(what, "mremap-swap"))
		return mremap_swap();
	if (!strcmp(what, "unmerge-high-flags"))
		return unmerge_high_flags();
	if (!strcmp(what, "hmm-exclusive"))
		return hmm_exclusive();
	if (!strcmp(what, "smart-pause"))
		return smart_pause();
	if (!strcmp(what, "thp-zero"))
		return thp_zero();
	kt_die("usage: ksm_review orphan|fork-fail|ebusy|flood|mremap-swap|"
	       "unmerge-high-flags|hmm-exclusive|smart-pause|thp-zero");
}
