// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_hazards HAZARD: one statement of ../shared/reference/hazards.md,
 * checked in the VM.  Each hazard is a function below, named after it,
 * and a line of tests/list ("hazard-<name>").
 *
 * Most start from merged_pairs(): NPAIRS pairs of pages in this process,
 * the two pages of a pair identical and every pair different, merged by
 * ksmd until each pair shares one frame.  A write that must stay private
 * then goes to the first page of a pair; its twin keeps the old content.
 * Every page is compared with the process's own shadow copy.
 */
#define _GNU_SOURCE
#include "ktest.h"
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>

#define NPAIRS	16
#define NPAGES	(2 * NPAIRS)

#ifndef MADV_HWPOISON
#define MADV_HWPOISON	100
#endif
#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif
#define KT_PM_UFFD_WP	(1ULL << 57)

static size_t ps;
static char *mem, *shadow;

static char *page(int i)
{
	return mem + i * ps;
}

/* Do the two pages of pair @k map one frame? */
static int pair_merged(int k)
{
	uint64_t a = kt_pfn(page(2 * k)), b = kt_pfn(page(2 * k + 1));

	return a && a == b;
}

static int pairs_merged_cond(void *arg)
{
	int k, want = *(int *)arg, n = 0;

	for (k = 0; k < NPAIRS; k++)
		n += pair_merged(k);
	return n >= want;
}

/* Wait until at least @want pairs share a frame; 0 if they do. */
static int wait_pairs(int want)
{
	return ksm_wait_for(pairs_merged_cond, &want, 10, 120);
}

/* Map and fill the pairs and make them mergeable; ksmd not started. */
static void make_pairs(void)
{
	int i;

	mem = kt_map(NPAGES);
	for (i = 0; i < NPAGES; i++)
		kt_fill(page(i), ps, 5000 + i / 2);
	shadow = kt_shadow(mem, NPAGES);
	if (madvise(mem, NPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
}

static void merged_pairs(void)
{
	make_pairs();
	ksm_go(1000, 10);
	kt_check(wait_pairs(NPAIRS) == 0, "all %d pairs merged", NPAIRS);
}

/* Pair @k after a private write to its first page: apart, both intact. */
static void check_private(int k, const char *how)
{
	kt_check(kt_diff(page(2 * k), shadow + 2 * k * ps, 2, how) == 0 &&
		 !pair_merged(k),
		 "%s: the write landed in the writer's page only", how);
}

/* ---- 1: write paths ------------------------------------------------ */

/* A child writes @len bytes into this process's page 2k at @off. */
enum { BY_VM_WRITEV, BY_PROC_MEM, BY_PTRACE };

static void remote_write(int how, int k, size_t off, const char *buf,
			 size_t len)
{
	pid_t parent = getpid(), pid = kt_fork();
	char *dst = page(2 * k) + off;

	if (!pid) {
		struct iovec l = { (void *)buf, len }, r = { dst, len };
		char path[64];
		int fd, ok = 0;
		size_t i;
		long w;

		switch (how) {
		case BY_VM_WRITEV:
			ok = process_vm_writev(parent, &l, 1, &r, 1, 0) ==
			     (ssize_t)len;
			break;
		case BY_PROC_MEM:
			snprintf(path, sizeof(path), "/proc/%d/mem", parent);
			fd = open(path, O_RDWR);
			ok = fd >= 0 && pwrite(fd, buf, len, (uintptr_t)dst) ==
			     (ssize_t)len;
			break;
		case BY_PTRACE:
			if (ptrace(PTRACE_ATTACH, parent, 0, 0) ||
			    waitpid(parent, NULL, __WALL) != parent)
				_exit(1);
			ok = 1;
			for (i = 0; i + sizeof(long) <= len; i += sizeof(long)) {
				memcpy(&w, buf + i, sizeof(w));
				ok &= !ptrace(PTRACE_POKEDATA, parent, dst + i,
					      (void *)w);
			}
			ptrace(PTRACE_DETACH, parent, 0, 0);
			break;
		}
		_exit(ok ? 0 : 1);
	}
	kt_check(kt_join(pid) == 0, "the remote write succeeded");
}

/* A block device that takes O_DIRECT: a zram device of our own. */
static int odirect_dev(void)
{
	char buf[16], path[64];
	int id, fd;

	if (kt_read_str("/sys/class/zram-control/hot_add", buf, sizeof(buf)))
		return -1;
	id = atoi(buf);
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", id);
	if (kt_write(path, "1M"))
		return -1;
	snprintf(path, sizeof(path), "/dev/zram%d", id);
	fd = open(path, O_RDWR | O_DIRECT);
	return fd;
}

static int hazard_write_paths(void)
{
	char buf[256];
	int k = 0, fd, p[2];
	size_t i;

	merged_pairs();

	/* a store */
	kt_poke(mem, shadow, 2 * k * ps + 7, page(2 * k)[7] ^ 1);
	check_private(k++, "a store");

	/* read(2) from a pipe straight into the merged page */
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 1);
	if (pipe(p) || write(p[1], buf, sizeof(buf)) != sizeof(buf))
		kt_die("pipe");
	kt_check(read(p[0], page(2 * k) + 64, sizeof(buf)) == sizeof(buf),
		 "read(2) into a merged page");
	memcpy(shadow + 2 * k * ps + 64, buf, sizeof(buf));
	check_private(k++, "read(2) from a pipe");

	/* writes by another process */
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 13 + 3);
	remote_write(BY_VM_WRITEV, k, 128, buf, sizeof(buf));
	memcpy(shadow + 2 * k * ps + 128, buf, sizeof(buf));
	check_private(k++, "process_vm_writev");

	remote_write(BY_PROC_MEM, k, 256, buf, sizeof(buf));
	memcpy(shadow + 2 * k * ps + 256, buf, sizeof(buf));
	check_private(k++, "a write to /proc/pid/mem");

	remote_write(BY_PTRACE, k, 512, buf, sizeof(buf));
	memcpy(shadow + 2 * k * ps + 512, buf, sizeof(buf));
	check_private(k++, "ptrace(PTRACE_POKEDATA)");

	/* O_DIRECT: the device DMAs into the page (here: zram's memcpy) */
	fd = odirect_dev();
	if (fd < 0) {
		kt_note("no O_DIRECT device (zram hot_add): that path untested");
	} else {
		char *blk = kt_map(1);

		kt_fill(blk, ps, 99);
		kt_check(pwrite(fd, blk, ps, 0) == (ssize_t)ps,
			 "O_DIRECT write of a block");
		kt_check(pread(fd, page(2 * k), ps, 0) == (ssize_t)ps,
			 "O_DIRECT read into a merged page");
		memcpy(shadow + 2 * k * ps, blk, ps);
		check_private(k++, "an O_DIRECT read");
		close(fd);
	}
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "every page matches the shadow");
	return kt_exit();
}

/* ---- 2: writes while ksmd scans at full speed ---------------------- */

static int hazard_scan_full_speed(void)
{
	time_t end;
	unsigned int r = 1;
	int i, rounds = 0;

	make_pairs();
	ksm_go(1000, 0);
	end = time(NULL) + 20;
	while (time(NULL) < end) {
		for (i = 0; i < 64; i++) {
			r = r * 1103515245 + 12345;
			kt_poke(mem, shadow, (r >> 4) % (NPAGES * ps),
				(char)(r >> 20));
		}
		rounds++;
		if (kt_diff(mem, shadow, NPAGES, "memory"))
			break;
		usleep(1000);
	}
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "%d rounds of random writes at sleep_millisecs=0: memory "
		 "matches its shadow", rounds);
	/* rewrite the pairs equal again: they must merge */
	for (i = 0; i < NPAGES; i++)
		kt_fill(page(i), ps, 7000 + i / 2);
	memcpy(shadow, mem, NPAGES * ps);
	kt_check(wait_pairs(NPAIRS) == 0, "the pairs merge again");
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "and still match the shadow");
	return kt_exit();
}

/* ---- 3: pinned or referenced pages are never merged ---------------- */

static int io_uring_register_buf(void *addr, size_t len)
{
	struct io_uring_params p = { 0 };
	struct iovec iov = { addr, len };
	int fd = syscall(__NR_io_uring_setup, 4, &p);

	if (fd < 0)
		return -1;
	if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS,
		    &iov, 1)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int hazard_pinned(void)
{
	struct iovec iov;
	char *spliced;
	int ring, p[2];

	make_pairs();
	/* pair 0: a long-term FOLL_PIN (io_uring fixed buffer) */
	ring = io_uring_register_buf(page(0), ps);
	if (ring < 0)
		kt_note("io_uring fixed buffers unavailable: %s",
			strerror(errno));
	/* pair 1: a page reference held by a pipe (vmsplice) */
	if (pipe(p))
		kt_die("pipe");
	iov.iov_base = page(2);
	iov.iov_len = ps;
	kt_check(vmsplice(p[1], &iov, 1, 0) == (ssize_t)ps,
		 "vmsplice of a page into a pipe");

	ksm_go(1000, 10);
	kt_check(wait_pairs(NPAIRS - 1 - (ring >= 0)) == 0,
		 "the unpinned pairs merged");
	ksm_wait_scans(3, 60);
	if (ring >= 0)
		kt_check(!pair_merged(0),
			 "a page pinned by io_uring was not merged");
	kt_check(!pair_merged(1), "a page held by a pipe was not merged");

	/* what the pipe holds is the page as the owner sees it */
	page(2)[0] ^= 0x42;
	shadow[2 * ps] ^= 0x42;
	spliced = malloc(ps);
	kt_check(read(p[0], spliced, ps) == (ssize_t)ps &&
		 !memcmp(spliced, page(2), ps),
		 "the pipe reads the owner's page, written after vmsplice");
	close(p[0]);
	close(p[1]);
	if (ring >= 0)
		close(ring);
	/* references gone: pair 1 merges now (pair 0's content changed) */
	page(2)[0] ^= 0x42;
	shadow[2 * ps] ^= 0x42;
	kt_check(wait_pairs(NPAIRS) == 0 || ring < 0,
		 "once the pin and the pipe are gone, every pair merges");
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "every page matches the shadow");
	return kt_exit();
}

/* ---- 4: a read-only long-term pin unshares a KSM page ---------------- */

/*
 * How many page tables map frame @pfn (/proc/kpagecount); -1 if unknown.
 * A KSM page is told by its mappings, not by /proc/kpageflags: 6.12's
 * stable_page_flags() tests "mapping & PAGE_MAPPING_KSM", which holds for
 * every anonymous page, and so reports KPF_KSM for all of them.
 */
static long frame_maps_at(int fd, uint64_t pfn)
{
	uint64_t count = 0;

	if (fd < 0 || !pfn ||
	    pread(fd, &count, sizeof(count), pfn * sizeof(count)) !=
	    sizeof(count))
		return -1;
	return count;
}

static long frame_maps(uint64_t pfn)
{
	int fd = open("/proc/kpagecount", O_RDONLY);
	long count = frame_maps_at(fd, pfn);

	if (fd >= 0)
		close(fd);
	return count;
}

#define KT_PM_EXCLUSIVE	(1ULL << 56)

/*
 * How many of the @n pages from @addr of process @pid are on a frame
 * mapped more than once: for private anonymous memory, a KSM page.
 */
static int shared_frames(pid_t pid, const void *addr, size_t n)
{
	uint64_t *pfn = calloc(n, sizeof(*pfn));
	int fd = open("/proc/kpagecount", O_RDONLY), shared = 0;
	size_t i;

	if (!pfn || fd < 0)
		kt_die("/proc/kpagecount");
	kt_pfns_of(pid, addr, n, pfn);
	for (i = 0; i < n; i++)
		shared += frame_maps_at(fd, pfn[i]) > 1;
	close(fd);
	free(pfn);
	return shared;
}

/* mm/gup_test.h of the kernel tree (CONFIG_GUP_TEST) */
struct pin_longterm_test {
	__u64 addr;
	__u64 size;
	__u32 flags;
};
#define PIN_LONGTERM_TEST_START	_IOW('g', 7, struct pin_longterm_test)
#define PIN_LONGTERM_TEST_STOP	_IO('g', 8)
#define PIN_LONGTERM_TEST_READ	_IOW('g', 9, __u64)
#define PIN_LONGTERM_TEST_FLAG_USE_FAST	2

/* Does the long-term pin of gup_test see page @want of the shadow? */
static int pin_sees(int gup, char *buf, int want)
{
	__u64 to = (uintptr_t)buf;

	if (ioctl(gup, PIN_LONGTERM_TEST_READ, &to))
		return 0;
	return !memcmp(buf, shadow + want * ps, ps);
}

/*
 * Pair @k after a read-only FOLL_LONGTERM pin of its first page, through
 * pin_user_pages() or (@fast) pin_user_pages_fast(); @kid maps the same
 * KSM page (inherited over fork).
 */
static void longterm_pin_pair(int gup, struct kt_proc *kid, int k, int fast)
{
	struct pin_longterm_test args = {
		.addr = (uintptr_t)page(2 * k), .size = ps,
		.flags = fast ? PIN_LONGTERM_TEST_FLAG_USE_FAST : 0,
	};
	const char *how = fast ? "pin_user_pages_fast" : "pin_user_pages";
	uint64_t kpfn = kt_pfn(page(2 * k)), pfn, ent = 0, theirs[2];
	char *buf = kt_map(1);

	kt_check(frame_maps(kpfn) == 4, "%s: pair %d maps a KSM page, mapped "
		 "4 times (%ld)", how, k, frame_maps(kpfn));
	if (ioctl(gup, PIN_LONGTERM_TEST_START, &args)) {
		kt_check(0, "%s: PIN_LONGTERM_TEST_START: %s", how,
			 strerror(errno));
		return;
	}
	pfn = kt_pfn(page(2 * k));
	kt_pagemap(page(2 * k), 1, &ent);
	kt_check(pfn && pfn != kpfn && frame_maps(pfn) == 1 &&
		 (ent & KT_PM_EXCLUSIVE),
		 "%s: the pinned page is a private copy, mapped exclusively "
		 "(%#lx, KSM page %#lx)", how, (long)pfn, (long)kpfn);
	kt_pfns_of(kid->pid, page(2 * k), 2, theirs);
	kt_check(kt_pfn(page(2 * k + 1)) == kpfn && theirs[0] == kpfn &&
		 theirs[1] == kpfn,
		 "%s: the twin and the other process keep the KSM page", how);
	kt_check(pin_sees(gup, buf, 2 * k), "%s: the pin reads the page", how);

	/* the other mappers write: the pin must not see it */
	kt_poke(mem, shadow, (2 * k + 1) * ps + 5, page(2 * k + 1)[5] ^ 0x5a);
	kt_check(kt_ask(kid, k) == 0, "%s: the other process wrote its copy",
		 how);
	kt_check(pin_sees(gup, buf, 2 * k),
		 "%s: writes by the other mappers do not show through the pin",
		 how);

	/* the pinner writes: the pin must see it, in place */
	kt_poke(mem, shadow, 2 * k * ps + 9, page(2 * k)[9] ^ 0x33);
	kt_check(kt_pfn(page(2 * k)) == pfn && pin_sees(gup, buf, 2 * k),
		 "%s: the pinner's write lands in the pinned page", how);
	/* ksmd must leave the pinned page alone */
	ksm_wait_scans(2, 60);
	kt_check(kt_pfn(page(2 * k)) == pfn && pin_sees(gup, buf, 2 * k),
		 "%s: after two full scans the pin still maps the page", how);
	ioctl(gup, PIN_LONGTERM_TEST_STOP);
	munmap(buf, ps);
}

static int hazard_longterm_pin(void)
{
	struct kt_proc kid;
	int gup, k;
	long cmd;

	gup = open("/sys/kernel/debug/gup_test", O_RDWR);
	if (gup < 0)
		kt_skip("no /sys/kernel/debug/gup_test (CONFIG_GUP_TEST)");
	merged_pairs();
	/* a second process mapping every KSM page */
	if (!kt_spawn(&kid)) {
		kt_who = "other mapper: ";
		kt_put(kid.up, 0);
		while ((cmd = kt_get(kid.down)) >= 0) {
			kt_poke(mem, shadow, 2 * cmd * ps + 100,
				page(2 * cmd)[100] ^ 0x77);
			kt_put(kid.up, 0);
		}
		kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
			 "every page matches the shadow");
		kt_child_exit();
	}
	if (kt_get(kid.up) != 0)
		kt_die("child setup");
	ksm_expect("two processes map each KSM page twice", NPAIRS,
		   3 * NPAIRS, 0);

	longterm_pin_pair(gup, &kid, 0, 0);
	ksm_expect("after the first pin (its copy unshared)", NPAIRS,
		   3 * NPAIRS - 3, 3);
	longterm_pin_pair(gup, &kid, 1, 1);
	/* pairs 0 and 1: only the other process's twin maps the KSM page */
	ksm_expect("after both pins", NPAIRS, 3 * (NPAIRS - 2), 6);
	kt_check(shared_frames(0, mem, NPAGES) == NPAGES - 4,
		 "every other page of ours is still on a KSM page");
	for (k = 0; k < 2; k++)
		check_private(k, "after the pin");
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "every page matches the shadow");
	kt_check(kt_finish(&kid) == 0, "the other process's checks");
	close(gup);
	return kt_exit();
}

/* ---- memory cgroups (9, 14) ----------------------------------------- */

/* The memory cgroup of hazards 9 and 14 (ksm_lib.h's helpers). */
static char cg_name[64];

static void cg_remove(void)
{
	if (getpid() != ksm_saved.owner)
		return;
	kt_kill_kids();		/* a cgroup with tasks cannot go */
	kt_cg_remove(cg_name);
}

/*
 * A memory cgroup of our own, without swap (so that its limit is one of
 * memory), with no limit yet.  Removed at exit.
 */
static void cg_make(const char *name)
{
	snprintf(cg_name, sizeof(cg_name), "%s", name);
	kt_cg_memory();
	kt_cg_make(name);
	atexit(cg_remove);
	if (kt_cg_write(cg_name, "memory.swap.max", "0"))
		kt_skip("no memory.swap.max (swap accounting)");
	if (kt_cg_write(cg_name, "memory.max", "max"))
		kt_die("memory.max");
}

/*
 * With its tasks gone the cgroup is charged for next to nothing (a few
 * kernel objects): no copy an unmerge made, no KSM page, was leaked.
 */
static void cg_drained(const char *when)
{
	long cur = kt_cg_read(cg_name, "memory.current");
	int i;

	for (i = 0; i < 100 && cur >= 2 << 20; i++) {
		usleep(100000);
		cur = kt_cg_read(cg_name, "memory.current");
	}
	kt_check(cur >= 0 && cur < 2 << 20,
		 "%s: the cgroup is charged for %ld kB, under 2 MiB", when,
		 cur >> 10);
}

/* memory.max = what the cgroup uses now plus @kb. */
static void cg_limit_above_current(long kb)
{
	long cur = kt_cg_read(cg_name, "memory.current");
	char val[32];

	snprintf(val, sizeof(val), "%ld", cur + kb * 1024);
	if (kt_cg_write(cg_name, "memory.max", val))
		kt_die("memory.max");
	kt_note("memory.max = %ld kB: memory.current %ld kB + %ld kB",
		(cur >> 10) + kb, cur >> 10, kb);
}

/* ---- 9: the OOM killer and ksmd -------------------------------------- */

#define V_PAGES	4096		/* a victim's merged pages: 16 MiB */
#define V_HOG	(64 << 20)	/* what it then tries to use, in bytes */
/* one that fits each content on one KSM page (max_page_sharing 256) */
#define V2_PAGES	(NPAIRS * 250)

/*
 * A victim in our memory cgroup: @pages pages with the content of the
 * parent's pairs, mergeable.  With @hog, once ksmd is merging them, it
 * fills a mergeable range of V_HOG bytes, half of it unique, half
 * duplicates, until the cgroup's limit has it OOM-killed while ksmd scans
 * and merges it.  Without, it waits for its pipe to close.
 */
/* How far the victim got, as it last said: ksmd keeps pace with it. */
static struct {
	long filled, items, merging;
} *vstat;

static void victim(struct kt_proc *v, size_t pages, int hog)
{
	size_t i, j, n = V_HOG / ps;
	char *big;

	kt_who = "victim: ";
	munmap(mem, NPAGES * ps);	/* the survivor's pairs, inherited */
	kt_cg_join(cg_name);
	kt_write("/proc/self/oom_score_adj", "1000");
	mem = kt_map(pages);
	for (i = 0; i < pages; i++)
		kt_fill(page(i), ps, 5000 + i % NPAIRS);
	if (madvise(mem, pages * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	kt_put(v->up, 0);
	if (!hog) {
		kt_get(v->down);
		kt_child_exit();
	}
	for (i = 0; i < 60000 && kt_merging_pages(0) < pages / 4; i++)
		usleep(1000);
	big = mmap(NULL, V_HOG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (big == MAP_FAILED || madvise(big, V_HOG, MADV_MERGEABLE))
		kt_die("the hog's mapping");
	for (i = 0; i < n; i++) {
		kt_fill(big + i * ps, ps, i & 1 ? 900000 + i : 5000 + i % 64);
		if (i % 256 != 255)
			continue;
		/* a MiB more: wait (a little) for ksmd to scan half of it */
		for (j = 0; j < 20; j++) {
			vstat->filled = i + 1;
			vstat->items = kt_ksm_stat(0, "ksm_rmap_items");
			vstat->merging = kt_merging_pages(0);
			if (vstat->items >= (long)(pages + i / 2))
				break;
			usleep(10000);
		}
	}
	kt_note("filled %d MiB and was not killed", V_HOG >> 20);
	_exit(0);
}

/* The parent's pairs, the survivor's, after the victim is gone. */
static void survivor_intact(const char *when)
{
	kt_check(kt_diff(mem, shadow, NPAGES, "survivor memory") == 0,
		 "%s: the survivor's pages match its shadow", when);
	kt_check(wait_pairs(NPAIRS) == 0, "%s: and are merged", when);
	ksm_expect(when, NPAIRS, NPAIRS, 0);
	kt_check(kt_merging_pages(0) == NPAGES,
		 "%s: the survivor's ksm_merging_pages is %d (%ld)", when,
		 NPAGES, kt_merging_pages(0));
}

static int hazard_oom(void)
{
	struct kt_proc v;
	long kills;
	time_t t0;
	int ret;

	cg_make("ksm-hazard-09");
	merged_pairs();
	ksm_go(1000, 0);

	/* killed by its cgroup's OOM while ksmd merges and scans it */
	if (kt_cg_write(cg_name, "memory.max", "24M"))
		kt_die("memory.max");
	vstat = kt_shared(sizeof(*vstat));
	if (!kt_spawn(&v))
		victim(&v, V_PAGES, 1);
	if (kt_get(v.up) != 0)
		kt_die("victim setup");
	t0 = time(NULL);
	ret = kt_finish(&v);
	kt_check(ret == 128 + SIGKILL && kt_cg_event(cg_name, "oom_kill") == 1,
		 "the victim was OOM-killed (exit %d after %ld s, oom_kill "
		 "%ld)", ret, (long)(time(NULL) - t0), kt_cg_event(cg_name, "oom_kill"));
	kt_check(vstat->items > V_PAGES && vstat->merging > V_PAGES / 4,
		 "while ksmd scanned and merged it: last seen with %ld of "
		 "its pages filled, %ld KSM items, %ld merged",
		 V_PAGES + vstat->filled, vstat->items, vstat->merging);
	kt_check(ksm_wait_scans(3, 120) == 0, "ksmd keeps scanning");
	survivor_intact("after the OOM kill");
	cg_drained("after the OOM kill");

	/* killed by its cgroup's OOM while run=2 unmerges it */
	if (kt_cg_write(cg_name, "memory.max", "max"))
		kt_die("memory.max");
	kills = kt_cg_event(cg_name, "oom_kill");
	if (!kt_spawn(&v))
		victim(&v, V2_PAGES, 0);
	if (kt_get(v.up) != 0)
		kt_die("victim setup");
	ksm_expect("the victim's pages merged with the survivor's", NPAIRS,
		   NPAIRS + V2_PAGES, 0);
	cg_limit_above_current(1024);
	t0 = time(NULL);
	ret = ksm_set("run", "2");
	kt_note("run=2: %s after %ld s", ret ? strerror(-ret) : "done",
		(long)(time(NULL) - t0));
	kt_check(!ret || ret == -ENOMEM, "run=2 succeeds or fails with "
		 "ENOMEM");
	ret = kt_finish(&v);
	kt_check(ret == 128 + SIGKILL && kt_cg_event(cg_name, "oom_kill") == kills + 1,
		 "the victim was OOM-killed during run=2 (exit %d, oom_kill "
		 "%ld)", ret, kt_cg_event(cg_name, "oom_kill"));
	kt_check(ksm_set("run", "2") == 0 && ksm_all_zero(),
		 "run=2 again: done, every counter 0");
	cg_drained("after the OOM kill during run=2");
	kt_check(kt_diff(mem, shadow, NPAGES, "survivor memory") == 0,
		 "the survivor's pages match its shadow after run=2");
	ksm_must_set("run", 1);
	survivor_intact("merging again");
	return kt_exit();
}

/* ---- 10: mremap of a merged range ----------------------------------- */

/* Does the page at @arg share the frame of the last moved page? */
static int joined_cond(void *arg)
{
	uint64_t pfn = kt_pfn(arg);

	return pfn && pfn == kt_pfn(page(NPAGES - 1));
}

static int hazard_mremap(void)
{
	char *to, *moved;
	int k;

	merged_pairs();
	to = kt_map(NPAGES + 2);
	moved = mremap(mem, NPAGES * ps, NPAGES * ps,
		       MREMAP_MAYMOVE | MREMAP_FIXED, to + ps);
	if (moved == MAP_FAILED)
		kt_die("mremap");
	mem = moved;
	kt_check(kt_diff(mem, shadow, NPAGES, "moved memory") == 0,
		 "the moved range keeps its contents");
	kt_check(kt_vma_has_flag(mem, NPAGES * ps, "mg"),
		 "and stays VM_MERGEABLE");
	kt_check(wait_pairs(NPAIRS) == 0,
		 "the pairs are merged at the new address");
	for (k = 0; k < 4; k++) {
		kt_poke(mem, shadow, 2 * k * ps + 9, page(2 * k)[9] ^ 0x11);
		check_private(k, "a store after mremap");
	}
	/* new content at the new place merges with a fresh mapping */
	to = kt_map(1);
	memcpy(to, page(NPAGES - 1), ps);
	if (madvise(to, ps, MADV_MERGEABLE))
		kt_die("madvise");
	kt_check(ksm_wait_for(joined_cond, to, 5, 60) == 0,
		 "a new page joins the moved KSM page");
	kt_check(!memcmp(to, shadow + (NPAGES - 1) * ps, ps) &&
		 kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "every page matches the shadow");
	return kt_exit();
}

/* ---- 14: unmerge in a memory cgroup whose limit cannot hold it ------- */

#define T_PAGES	2048		/* a tenant's pages: 8 MiB */
#define T_SEEDS	8		/* of 8 different contents */

enum { T_UNMERGE, T_MERGE, T_DIFF, T_MERGEABLE, T_KSM, T_FRAMES };

/*
 * A tenant in our memory cgroup: T_PAGES pages of T_SEEDS contents,
 * mergeable.  It answers the parent's commands until its pipe closes;
 * @killable 0 makes it exempt from the OOM killer (oom_score_adj -1000).
 */
static void tenant(struct kt_proc *t, int killable)
{
	size_t len = T_PAGES * ps;
	uint64_t *pfn;
	long cmd, ans;
	int i;

	kt_who = "tenant: ";
	kt_cg_join(cg_name);
	if (!killable && kt_write("/proc/self/oom_score_adj", "-1000"))
		kt_die("oom_score_adj");
	mem = kt_map(T_PAGES);
	for (i = 0; i < T_PAGES; i++)
		kt_fill(page(i), ps, 3000 + i % T_SEEDS);
	shadow = kt_shadow(mem, T_PAGES);
	pfn = calloc(T_PAGES, sizeof(*pfn));
	if (!pfn || madvise(mem, len, MADV_MERGEABLE))
		kt_die("tenant setup");
	kt_put(t->up, 0);
	while ((cmd = kt_get(t->down)) >= 0) {
		switch (cmd) {
		case T_UNMERGE:
		case T_MERGE:
			ans = madvise(mem, len, cmd == T_MERGE ?
				      MADV_MERGEABLE : MADV_UNMERGEABLE) ?
			      errno : 0;
			break;
		case T_DIFF:
			ans = kt_diff(mem, shadow, T_PAGES, "tenant memory");
			break;
		case T_MERGEABLE:
			ans = kt_vma_has_flag(mem, len, "mg");
			break;
		case T_KSM:
			ans = shared_frames(0, mem, T_PAGES);
			break;
		default:
			kt_pfns(mem, T_PAGES, pfn);
			ans = T_PAGES - kt_pfn_dups(pfn, T_PAGES);
			break;
		}
		kt_put(t->up, ans);
	}
	kt_child_exit();
}

static pid_t start_tenant(struct kt_proc *t, int killable)
{
	if (!kt_spawn(t))
		tenant(t, killable);
	if (kt_get(t->up) != 0)
		kt_die("tenant setup");
	return t->pid;
}

static int tenant_all_shared(void *arg)
{
	return kt_ask(arg, T_KSM) == T_PAGES;
}

/*
 * The tenant's pages are merged: T_SEEDS KSM pages, all of them mapped.
 * The counters alone do not show it: the copies an unmerge made are
 * counted as merged until ksmd looks at them again.
 */
static void tenant_merged(struct kt_proc *t, const char *when)
{
	int ok = !ksm_wait_for(tenant_all_shared, t, 100, 300);

	kt_check(ok, "%s: all %d tenant pages on KSM pages (%ld)", when,
		 T_PAGES, kt_ask(t, T_KSM));
	ksm_expect(when, T_SEEDS, T_PAGES - T_SEEDS, 0);
	kt_check(kt_merging_pages(t->pid) == T_PAGES,
		 "%s: ksm_merging_pages %d (%ld)", when, T_PAGES,
		 kt_merging_pages(t->pid));
}

/*
 * After an unmerge failed for want of memory: the limit held, nothing was
 * lost, the range is still mergeable, and ksmd merges the copies it made
 * back, with the counters exact again.
 */
static void tenant_after_failure(struct kt_proc *t, const char *what)
{
	int ksm;

	kt_check(kt_cg_read(cg_name, "memory.current") <= kt_cg_read(cg_name, "memory.max") &&
		 kt_cg_event(cg_name, "oom_kill") == 0,
		 "%s: the limit held, nothing was OOM-killed", what);
	/* room for the checks' own allocations (seq_file buffers) */
	cg_limit_above_current(2048);
	kt_check(kt_ask(t, T_DIFF) == 0, "%s: no tenant data lost", what);
	kt_check(kt_ask(t, T_MERGEABLE) == 1,
		 "%s: the range keeps VM_MERGEABLE", what);
	ksm = kt_ask(t, T_KSM);
	kt_check(ksm > 0 && ksm < T_PAGES,
		 "%s: part of the range unmerged (%d of %d pages still on KSM "
		 "pages)", what, ksm, T_PAGES);
	ksm_must_set("run", 1);
	tenant_merged(t, "ksmd merged the copies back");
}

/* Name every process that maps a KSM page (the KSM line of smaps_rollup). */
static void ksm_mappers(void)
{
	char path[64], comm[32], line[128];
	long kb;
	int pid;
	FILE *f;

	for (pid = 1; pid < 32768; pid++) {
		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "KSM: %ld kB", &kb) == 1 && kb) {
				snprintf(path, sizeof(path), "/proc/%d/comm",
					 pid);
				kt_read_str(path, comm, sizeof(comm));
				kt_note("pid %d (%s) maps %ld kB of KSM pages",
					pid, comm, kb);
			}
		fclose(f);
	}
}

/*
 * A signal interrupts a long run=2: its writer, killed while it unmerges
 * 32 MiB, dies at once and leaves the rest merged and intact.
 */
#define S_PAGES	8192

static void unmerge_interrupted(void)
{
	pid_t pid;
	int i, ret, left;
	struct timespec a, b;
	long ms;

	/*
	 * One KSM page for each content: max_page_sharing changes only
	 * while no KSM page exists, so before our pages are mergeable (the
	 * killed tenant's may take a moment to go).
	 */
	for (i = 0; i < 100 && ksm_set_long("max_page_sharing", S_PAGES); i++)
		usleep(100000);
	kt_check(ksm_get("max_page_sharing") == S_PAGES,
		 "max_page_sharing=%d accepted after %d ms: no KSM page is "
		 "left", S_PAGES, i * 100);
	if (ksm_get("max_page_sharing") != S_PAGES)
		ksm_mappers();
	mem = kt_map(S_PAGES);
	for (i = 0; i < S_PAGES; i++)
		kt_fill(page(i), ps, 7000 + i % T_SEEDS);
	shadow = kt_shadow(mem, S_PAGES);
	if (madvise(mem, S_PAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	ksm_expect("32 MiB merged", T_SEEDS, S_PAGES - T_SEEDS, 0);
	pid = kt_fork();
	if (!pid) {
		/* the writer maps none of it: only our pages are unmerged */
		munmap(mem, S_PAGES * ps);
		_exit(ksm_set("run", "2") ? 1 : 0);
	}
	/* run reads 2 from the moment the unmerge begins */
	for (i = 0; i < 500 && ksm_get("run") != 2; i++)
		usleep(10000);
	usleep(50000);
	clock_gettime(CLOCK_MONOTONIC, &a);
	kill(pid, SIGKILL);
	ret = kt_join(pid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	left = shared_frames(0, mem, S_PAGES);
	kt_note("the writer of run=2: exit %d, %ld ms after SIGKILL, %d pages "
		"still merged", ret, ms, left);
	if (ret == 0 || !left) {
		kt_note("run=2 finished within 50 ms: interruption unchecked");
	} else {
		kt_check(ret == 128 + SIGKILL && ms < 2000 && left < S_PAGES,
			 "SIGKILL interrupts run=2 half-way (exit %d after %ld "
			 "ms, %d pages still merged)", ret, ms, left);
		kt_check(ksm_get("run") != 2,
			 "run is not left at 2 (%ld)", ksm_get("run"));
	}
	kt_check(kt_diff(mem, shadow, S_PAGES, "memory") == 0,
		 "after the interrupted run=2 every page matches the shadow");
	clock_gettime(CLOCK_MONOTONIC, &a);
	ret = ksm_set("run", "2");
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	kt_check(!ret && ksm_all_zero() && shared_frames(0, mem, S_PAGES) == 0,
		 "run=2 again (%ld ms): every page private, every counter 0",
		 ms);
	kt_check(kt_diff(mem, shadow, S_PAGES, "memory") == 0,
		 "every page matches the shadow");
	munmap(mem, S_PAGES * ps);
}

static int hazard_memcg_unmerge(void)
{
	struct kt_proc t;
	int err;

	cg_make("ksm-hazard-14");
	start_tenant(&t, 0);
	ksm_go(1000, 10);
	tenant_merged(&t, "merged");

	/* MADV_UNMERGEABLE: upstream's madvise() turns ENOMEM into EAGAIN */
	ksm_must_set("run", 0);
	cg_limit_above_current(1024);
	err = kt_ask(&t, T_UNMERGE);
	kt_check(err == EAGAIN || err == ENOMEM,
		 "MADV_UNMERGEABLE over memory.max fails with EAGAIN or ENOMEM "
		 "(%s)", err > 0 ? strerror(err) : "it succeeded");
	kt_check(kt_cg_event(cg_name, "max") > 0, "the unmerge ran into memory.max");
	tenant_after_failure(&t, "MADV_UNMERGEABLE");

	/* run=2: the write fails with ENOMEM and leaves run at 0 (stop) */
	cg_limit_above_current(1024);
	err = ksm_set("run", "2");
	kt_check(err == -ENOMEM && ksm_get("run") == 0,
		 "run=2 over memory.max fails with ENOMEM, run is 0 (%s, run %ld)",
		 err ? strerror(-err) : "it succeeded", ksm_get("run"));
	tenant_after_failure(&t, "run=2");

	/* with room for the copies, both succeed */
	if (kt_cg_write(cg_name, "memory.max", "max"))
		kt_die("memory.max");
	kt_check(kt_ask(&t, T_UNMERGE) == 0,
		 "without the limit MADV_UNMERGEABLE succeeds");
	kt_check(kt_ask(&t, T_DIFF) == 0 && kt_ask(&t, T_KSM) == 0 &&
		 kt_ask(&t, T_FRAMES) == T_PAGES && !kt_ask(&t, T_MERGEABLE),
		 "every page private, on a frame of its own, data intact, "
		 "the range no longer mergeable");
	ksm_expect("after MADV_UNMERGEABLE", 0, 0, 0);
	kt_check(kt_merging_pages(t.pid) == 0,
		 "the tenant's ksm_merging_pages is 0");
	kt_check(kt_ask(&t, T_MERGE) == 0, "MADV_MERGEABLE again");
	tenant_merged(&t, "merged again");
	kt_check(ksm_set("run", "2") == 0, "without the limit run=2 succeeds");
	kt_check(kt_ask(&t, T_DIFF) == 0 && kt_ask(&t, T_KSM) == 0 &&
		 kt_ask(&t, T_FRAMES) == T_PAGES,
		 "every page private, data intact");
	ksm_check_zero("after run=2");
	kt_check(kt_finish(&t) == 0, "the tenant's checks");
	cg_drained("the tenant exited");

	/* a tenant the OOM killer may take: killed, or a clean failure */
	ksm_must_set("run", 1);
	start_tenant(&t, 1);
	tenant_merged(&t, "a killable tenant merged");
	cg_limit_above_current(1024);
	err = kt_ask(&t, T_UNMERGE);
	if (err == EAGAIN || err == ENOMEM) {
		kt_note("the killable tenant's unmerge failed: %s",
			strerror(err));
		cg_limit_above_current(2048);
		kt_check(kt_ask(&t, T_DIFF) == 0,
			 "killable tenant: no data lost");
		kt_check(kt_finish(&t) == 0, "the tenant's checks");
	} else {
		kt_check(err == -1, "the killable tenant's unmerge did not "
			 "succeed over the limit (%ld)", (long)err);
		err = kt_finish(&t);
		kt_check(err == 128 + SIGKILL && kt_cg_event(cg_name, "oom_kill") > 0,
			 "the OOM killer killed the tenant (exit %d, "
			 "oom_kill %ld)", err, kt_cg_event(cg_name, "oom_kill"));
	}
	ksm_expect("the tenant is gone", 0, 0, 0);
	cg_drained("the tenant is gone");
	cg_remove();
	unmerge_interrupted();
	return kt_exit();
}

/* ---- 21: memory failure on a KSM page ------------------------------- */

static void poison_page(void *p)
{
	if (madvise(p, ps, MADV_HWPOISON))
		kt_die("madvise(MADV_HWPOISON)");
}

static int hazard_hwpoison(void)
{
	uint64_t before;
	pid_t pid;

	merged_pairs();
	/*
	 * soft offline: the page moves, both mappings follow it.  ksmd is
	 * stopped first (run=0 returns once its batch is over): a reference
	 * it holds for a moment (a scrub, a compare) makes the migration
	 * fail with EBUSY, as it would on any kernel, and this is about
	 * whether a KSM page can be moved, not about that race.
	 */
	ksm_must_set("run", 0);
	before = kt_pfn(page(0));
	if (madvise(page(0), ps, MADV_SOFT_OFFLINE)) {
		kt_note("MADV_SOFT_OFFLINE: %s", strerror(errno));
		kt_check(errno == EINVAL, "MADV_SOFT_OFFLINE failed cleanly");
	} else {
		kt_check(kt_pfn(page(0)) != before && pair_merged(0),
			 "soft offline moved the KSM page, still shared (%#lx -> %#lx)",
			 (long)before, (long)kt_pfn(page(0)));
	}
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "every page matches the shadow after soft offline");

	/* hard poison, in a child: pair 1's frame is lost to every mapper */
	ksm_must_set("run", 0);
	pid = kt_fork();
	if (!pid) {
		kt_who = "poisoned child: ";
		/* the poisoner itself may be killed at once (action required) */
		if (kt_catch_bus(poison_page, page(2)))
			kt_note("SIGBUS right away, as MF_ACTION_REQUIRED may send");
		kt_check(kt_sigbus(page(2)), "touching the page: SIGBUS");
		kt_check(kt_sigbus(page(3)), "touching its twin: SIGBUS");
		kt_check(!kt_sigbus(page(4)) &&
			 kt_diff(page(4), shadow + 4 * ps, NPAGES - 4,
				 "memory") == 0,
			 "the other KSM pages are intact");
		kt_child_exit();
	}
	kt_check(kt_join(pid) == 0, "the child saw SIGBUS exactly on the "
		 "poisoned KSM page");
	/* our own mappings of that frame (inherited) are gone too */
	kt_check(kt_sigbus(page(2)) && kt_sigbus(page(3)),
		 "the parent, which shared the frame, gets SIGBUS too");
	kt_check(kt_diff(page(4), shadow + 4 * ps, NPAGES - 4, "memory") == 0,
		 "the parent's other pages match the shadow");
	/* drop the poisoned range before ksm_restore() unmerges */
	munmap(page(2), 2 * ps);
	ksm_must_set("run", 1);
	return kt_exit();
}

/* ---- 22: userfaultfd write protection and UFFDIO_MOVE --------------- */

static int uffd_open(__u64 features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *writer(void *arg)
{
	*(volatile char *)arg ^= 0x77;
	return NULL;
}

static int hazard_uffd(void)
{
	struct uffdio_register reg = { 0 };
	struct uffdio_writeprotect wp = { 0 };
	struct uffdio_move mv = { 0 };
	struct uffd_msg msg;
	struct pollfd pfd;
	uint64_t ent;
	pthread_t t;
	char *dst;
	int fd, fd2;

	make_pairs();
	fd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	if (fd < 0)
		kt_skip("no userfaultfd write protection");
	reg.range.start = (uintptr_t)mem;
	reg.range.len = NPAGES * ps;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		kt_die("UFFDIO_REGISTER");
	wp.range = reg.range;
	wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
	if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp))
		kt_die("UFFDIO_WRITEPROTECT");

	ksm_go(1000, 10);
	kt_check(wait_pairs(NPAIRS) == 0, "write-protected pages merged");
	kt_check(!kt_pagemap(page(0), 1, &ent) && (ent & KT_PM_UFFD_WP),
		 "the merged PTE is still uffd-wp (pagemap)");

	/* a write must stop in the uffd, not copy silently */
	pthread_create(&t, NULL, writer, page(0));
	pfd.fd = fd;
	pfd.events = POLLIN;
	kt_check(poll(&pfd, 1, 5000) == 1 &&
		 read(fd, &msg, sizeof(msg)) == sizeof(msg) &&
		 msg.event == UFFD_EVENT_PAGEFAULT &&
		 (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP),
		 "a write to a merged uffd-wp page faults to userfaultfd");
	wp.range.start = (uintptr_t)page(0);
	wp.range.len = ps;
	wp.mode = 0;
	kt_check(ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0,
		 "resolving it by dropping the protection");
	pthread_join(t, NULL);
	shadow[0] ^= 0x77;
	check_private(0, "the write after uffd-wp");

	/* UFFDIO_MOVE of a KSM page is refused */
	fd2 = uffd_open(UFFD_FEATURE_MOVE);
	if (fd2 < 0) {
		kt_note("no UFFDIO_MOVE: that part untested");
	} else {
		dst = kt_map(1);
		munmap(dst, ps);
		dst = mmap(dst, ps, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		reg.range.start = (uintptr_t)dst;
		reg.range.len = ps;
		reg.mode = UFFDIO_REGISTER_MODE_MISSING;
		if (ioctl(fd2, UFFDIO_REGISTER, &reg))
			kt_die("UFFDIO_REGISTER (missing)");
		mv.dst = (uintptr_t)dst;
		mv.src = (uintptr_t)page(2);
		mv.len = ps;
		int ret = ioctl(fd2, UFFDIO_MOVE, &mv), err = errno;

		kt_check(ret == -1 && err == EBUSY,
			 "UFFDIO_MOVE of a KSM page fails with EBUSY (%s)",
			 ret ? strerror(err) : "it succeeded");
		kt_check(pair_merged(1), "and leaves it merged in place");
		close(fd2);
	}
	close(fd);
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "every page matches the shadow");
	return kt_exit();
}

/* ---- 23: mlock ------------------------------------------------------ */

static long meminfo_kb(const char *field)
{
	char key[64];
	long v, found = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fscanf(f, "%63s %ld kB", key, &v) == 2)
		if (!strncmp(key, field, strlen(field)) &&
		    key[strlen(field)] == ':')
			found = v;
	if (f)
		fclose(f);
	return found;
}

/*
 * Mlocked as of now: mlock and munlock go through per-CPU batches, and
 * compaction drains them on every CPU (lru_add_drain_all()).
 */
static long mlocked_kb(void)
{
	kt_write("/proc/sys/vm/compact_memory", "1");
	return meminfo_kb("Mlocked");
}

static int hazard_mlock(void)
{
	long mlocked = mlocked_kb(), unevict;
	pid_t pid;
	int i;

	pid = kt_fork();
	if (!pid) {
		kt_who = "mlocked child: ";
		make_pairs();
		if (mlock(mem, NPAGES * ps))
			kt_die("mlock");
		ksm_go(1000, 10);
		kt_check(wait_pairs(NPAIRS) == 0, "mlocked pages merged");
		kt_poke(mem, shadow, 11, mem[11] ^ 1);
		check_private(0, "a store to an mlocked merged page");
		kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
			 "every page matches the shadow");
		kt_child_exit();
	}
	kt_check(kt_join(pid) == 0, "the mlocked child's checks");
	/*
	 * The last mmput() of the child may be ksmd's, a little later, and
	 * unmapping queues each munlock on a per-CPU batch: give it time.
	 */
	ksm_must_set("run", 2);
	for (i = 0; i < 50 && (unevict = mlocked_kb()) != mlocked; i++)
		usleep(200000);
	kt_check(unevict == mlocked,
		 "Mlocked is back to %ld kB after exit (now %ld kB)",
		 mlocked, unevict);
	return kt_exit();
}

/* ---- 24: a huge sparse mergeable VMA -------------------------------- */

static int hazard_sparse(void)
{
	size_t span = 1UL << 40, step = 1UL << 34;	/* 1 TiB, 16 GiB */
	int i, n = span / step, merged;
	char *big;
	time_t t0;
	long scans;

	big = mmap(NULL, span, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (big == MAP_FAILED)
		kt_die("mmap of 1 TiB");
	for (i = 0; i < n; i++)
		kt_fill(big + i * step, ps, 1 + i / 2);
	if (madvise(big, span, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE) of 1 TiB");
	t0 = time(NULL);
	scans = ksm_get("full_scans");
	ksm_go(1000, 0);
	kt_check(ksm_wait_scans(4, 120) == 0,
		 "ksmd completes full scans of a sparse 1 TiB VMA "
		 "(%ld in %ld s)", ksm_get("full_scans") - scans,
		 (long)(time(NULL) - t0));
	for (i = 0, merged = 0; i < n; i += 2)
		merged += kt_pfn(big + i * step) &&
			  kt_pfn(big + i * step) == kt_pfn(big + (i + 1) * step);
	kt_check(merged == n / 2, "its %d pairs merged (%d)", n / 2, merged);
	munmap(big, span);
	return kt_exit();
}

/* ---- 25 (and 11): injected allocation failures ---------------------- */

#define FI	"/sys/kernel/debug/"
#define F_PAGES	512		/* 32 contents, 16 copies of each */
#define F_SEEDS	32

static const char *const fi_attrs[] = { "failslab", "fail_page_alloc" };
static pid_t fi_ksmd;

static int fi_set(const char *attr, const char *file, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), FI "%s/%s", attr, file);
	return kt_write(path, val);
}

/* Set make-it-fail of @pid; turning our own off may need a few tries. */
static void fi_make_it_fail(pid_t pid, int on)
{
	char path[64];
	int i, err;

	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", pid);
	for (i = 0; i < 1000; i++) {
		err = kt_write(path, on ? "1" : "0");
		if (err != -ENOMEM)
			break;
	}
	if (err && on) {
		errno = -err;
		kt_die("make-it-fail");
	}
}

/* Injection off again, also when the test dies half-way. */
static void fi_off(void)
{
	size_t i;

	if (getpid() != ksm_saved.owner)
		return;
	for (i = 0; i < ARRAY_SIZE(fi_attrs); i++)
		fi_set(fi_attrs[i], "probability", "0");
	if (fi_ksmd)
		fi_make_it_fail(fi_ksmd, 0);
	fi_make_it_fail(getpid(), 0);
}

static pid_t ksmd_pid(void)
{
	char path[64], comm[32];
	int pid;

	for (pid = 2; pid < 1000; pid++) {
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		if (!kt_read_str(path, comm, sizeof(comm)) &&
		    !strcmp(comm, "ksmd"))
			return pid;
	}
	return 0;
}

/*
 * failslab and fail_page_alloc: @percent of the allocations of the tasks
 * with make-it-fail set fail, sleeping ones (GFP_KERNEL) and order-0
 * pages included; each failure is logged with its stack.
 */
static void fi_setup(int percent)
{
	char val[16];
	size_t i;

	if (access(FI "failslab", F_OK) || access(FI "fail_page_alloc", F_OK))
		kt_skip("no failslab/fail_page_alloc: only the debug kernel "
			"has CONFIG_FAULT_INJECTION_DEBUG_FS");
	fi_ksmd = ksmd_pid();
	if (!fi_ksmd)
		kt_die("no ksmd");
	atexit(fi_off);
	snprintf(val, sizeof(val), "%d", percent);
	for (i = 0; i < ARRAY_SIZE(fi_attrs); i++) {
		if (fi_set(fi_attrs[i], "task-filter", "Y") ||
		    fi_set(fi_attrs[i], "ignore-gfp-wait", "N") ||
		    fi_set(fi_attrs[i], "interval", "1") ||
		    fi_set(fi_attrs[i], "times", "-1") ||
		    fi_set(fi_attrs[i], "space", "0") ||
		    fi_set(fi_attrs[i], "verbose", "2") ||
		    fi_set(fi_attrs[i], "verbose_ratelimit_burst", "1000") ||
		    fi_set(fi_attrs[i], "probability", val))
			kt_die(fi_attrs[i]);
	}
	if (fi_set("fail_page_alloc", "min-order", "0") ||
	    fi_set("fail_page_alloc", "ignore-gfp-highmem", "N"))
		kt_die("fail_page_alloc");
}

/*
 * Read the kernel log from @fd on (opened at its end): the injected
 * failures are added to *@failures, and those whose stack names @what
 * are returned.
 */
static int kmsg_count(int fd, const char *what, int *failures)
{
	char rec[8192];
	int hits = 0, seen = 1;
	ssize_t n;

	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 || errno == EPIPE) {
		if (n <= 0)
			continue;	/* overwritten: read on */
		rec[n] = 0;
		if (strstr(rec, "FAULT_INJECTION: forcing")) {
			++*failures;
			seen = 0;
		} else if (!seen && strstr(rec, what)) {
			hits++;
			seen = 1;
		}
	}
	return hits;
}

/* Do the pages of each content share one frame, a KSM page? */
static int groups_merged(void)
{
	uint64_t pfn[F_PAGES];
	int i, bad = 0;

	kt_pfns(mem, F_PAGES, pfn);
	for (i = 0; i < F_PAGES; i++)
		bad += !pfn[i] || pfn[i] != pfn[i % F_SEEDS] ||
		       frame_maps(pfn[i]) != F_PAGES / F_SEEDS;
	return bad;
}

static int hazard_fault_injection(void)
{
	int i, kmsg, failures = 0, hits, tries;
	size_t half = F_PAGES / 2 * ps;
	long err;

	fi_setup(20);
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg < 0)
		kt_die("/dev/kmsg");
	lseek(kmsg, 0, SEEK_END);

	/* items first, without failures: every page unique */
	mem = kt_map(F_PAGES);
	for (i = 0; i < F_PAGES; i++)
		kt_fill(page(i), ps, 100000 + i);
	if (madvise(mem, F_PAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	ksm_go(1000, 10);
	ksm_expect("every page seen once", 0, 0, F_PAGES);

	/* ksmd's allocations fail: it merges 32 KSM pages of 16 mappings */
	fi_make_it_fail(fi_ksmd, 1);
	for (i = 0; i < F_PAGES; i++)
		kt_fill(page(i), ps, 1 + i % F_SEEDS);
	shadow = kt_shadow(mem, F_PAGES);
	ksm_expect("merged while ksmd's allocations fail", F_SEEDS,
		   F_PAGES - F_SEEDS, 0);
	kt_check(groups_merged() == 0 && kt_merging_pages(0) == F_PAGES,
		 "each content on one KSM page, ksm_merging_pages %d (%ld)",
		 F_PAGES, kt_merging_pages(0));
	kt_check(kt_diff(mem, shadow, F_PAGES, "memory") == 0,
		 "every page matches the shadow");
	hits = kmsg_count(kmsg, "node_reserve", &failures);
	kt_note("%d failures injected into ksmd, %d in node_reserve()",
		failures, hits);
	kt_check(hits > 0, "a failure reached node_reserve(), which makes "
		 "room for a node's mappings (statement 11)");
	/* from here on a line per failure, no stack */
	fi_set("failslab", "verbose", "1");
	fi_set("fail_page_alloc", "verbose", "1");

	/* reclaim and compaction walk the KSM pages' mappings */
	kt_check(madvise(mem, F_PAGES * ps, MADV_PAGEOUT) == 0,
		 "MADV_PAGEOUT of the KSM pages");
	kt_write("/proc/sys/vm/compact_memory", "1");
	kt_check(kt_diff(mem, shadow, F_PAGES, "memory") == 0,
		 "after pageout and compaction every page matches the shadow");

	/*
	 * Our own allocations fail too: write faults on KSM pages and
	 * MADV_UNMERGEABLE.  Nothing is printed (that could fail) until
	 * make-it-fail is off again.
	 */
	ksm_expect("merged again", F_SEEDS, F_PAGES - F_SEEDS, 0);
	fi_make_it_fail(getpid(), 1);
	for (i = 0; i < F_SEEDS; i++)
		kt_poke(mem, shadow, i * ps + 3, page(i)[3] ^ 0x3c);
	for (tries = 1; madvise(mem + half, half, MADV_UNMERGEABLE); tries++)
		if (tries > 1000 || (errno != EAGAIN && errno != ENOMEM))
			break;
	err = errno;
	fi_make_it_fail(getpid(), 0);
	kt_check(tries <= 1000, "MADV_UNMERGEABLE succeeded after %d "
		 "attempt(s) (last error: %s)", tries, strerror(err));
	kt_check(kt_diff(mem, shadow, F_PAGES, "memory") == 0,
		 "every page matches the shadow after the write faults and "
		 "the unmerge");
	kt_check(shared_frames(0, mem + half, F_PAGES / 2) == 0 &&
		 !kt_vma_has_flag(mem + half, half, "mg"),
		 "the unmerged half has no KSM page left and is not "
		 "mergeable");

	/* run=2 by a writer whose allocations fail */
	fi_make_it_fail(getpid(), 1);
	for (tries = 1; (err = ksm_set("run", "2")); tries++)
		if (tries > 1000 || (err != -ENOMEM && err != -EAGAIN))
			break;
	fi_make_it_fail(getpid(), 0);
	kt_check(!err, "run=2 succeeded after %d attempt(s) (last error: %s)",
		 tries, strerror(-err));
	kt_check(kt_diff(mem, shadow, F_PAGES, "memory") == 0 &&
		 shared_frames(0, mem, F_PAGES) == 0,
		 "after run=2 every page is private and matches the shadow");
	kmsg_count(kmsg, "", &failures);
	kt_note("%d failures injected in all", failures);
	fi_off();
	ksm_check_zero("after run=2");
	close(kmsg);
	return kt_exit();
}

/* ---- 26: secondary MMUs (the HMM test driver's device mirror) ------ */

struct hmm_cmd {
	__u64 addr, ptr, npages, cpages, faults;
};
#define HMM_DMIRROR_WRITE	_IOWR('H', 0x01, struct hmm_cmd)

static int hmm_write(int fd, void *addr, void *buf)
{
	struct hmm_cmd c = { (uintptr_t)addr, (uintptr_t)buf, 1, 0, 0 };

	return ioctl(fd, HMM_DMIRROR_WRITE, &c) ? -errno : 0;
}

static int hazard_mmu_notifier(void)
{
	char *buf;
	int fd, k;

	fd = open("/dev/hmm_dmirror0", O_RDWR);
	if (fd < 0)
		kt_skip("no /dev/hmm_dmirror0 (CONFIG_TEST_HMM)");
	buf = kt_map(1);
	make_pairs();
	/* first pages: different content, mapped writable by the device */
	for (k = 0; k < NPAIRS; k++) {
		kt_fill(buf, ps, 900 + k);
		if (hmm_write(fd, page(2 * k), buf))
			kt_die("HMM_DMIRROR_WRITE");
		memcpy(shadow + 2 * k * ps, buf, ps);
	}
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "device writes reach the process");
	/* make them identical to their twins again, through the device */
	for (k = 0; k < NPAIRS; k++) {
		memcpy(buf, page(2 * k + 1), ps);
		hmm_write(fd, page(2 * k), buf);
		memcpy(shadow + 2 * k * ps, buf, ps);
	}
	ksm_go(1000, 10);
	kt_check(wait_pairs(NPAIRS) == 0,
		 "pages the device mapped writable merged");
	/* the device writes again: it must fault, not use a stale mapping */
	for (k = 0; k < NPAIRS; k++) {
		kt_fill(buf, ps, 1900 + k);
		kt_check(hmm_write(fd, page(2 * k), buf) == 0 &&
			 !memcmp(page(2 * k), buf, ps),
			 "pair %d: a device write after merging reaches the "
			 "process", k);
		memcpy(shadow + 2 * k * ps, buf, ps);
		if (k < 3)
			check_private(k, "a device write");
	}
	kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
		 "no device write reached a twin: every page matches the "
		 "shadow");
	close(fd);
	return kt_exit();
}

static const struct {
	const char *name;
	int (*fn)(void);
} hazards[] = {
	{ "write-paths", hazard_write_paths },
	{ "scan-full-speed", hazard_scan_full_speed },
	{ "pinned", hazard_pinned },
	{ "longterm-pin", hazard_longterm_pin },
	{ "oom", hazard_oom },
	{ "mremap", hazard_mremap },
	{ "memcg-unmerge", hazard_memcg_unmerge },
	{ "hwpoison", hazard_hwpoison },
	{ "uffd", hazard_uffd },
	{ "mlock", hazard_mlock },
	{ "sparse", hazard_sparse },
	{ "fault-injection", hazard_fault_injection },
	{ "mmu-notifier", hazard_mmu_notifier },
};

int main(int argc, char **argv)
{
	size_t i;

	ps = kt_ps();
	for (i = 0; argc > 1 && i < ARRAY_SIZE(hazards); i++) {
		if (strcmp(argv[1], hazards[i].name))
			continue;
		ksm_begin();
		return hazards[i].fn();
	}
	fprintf(stderr, "usage: ksm_hazards HAZARD; one of:");
	for (i = 0; i < ARRAY_SIZE(hazards); i++)
		fprintf(stderr, " %s", hazards[i].name);
	fprintf(stderr, "\n");
	return KT_FAIL;
}
