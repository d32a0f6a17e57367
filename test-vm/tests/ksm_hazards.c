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
	/* soft offline: the page moves, both mappings follow it */
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
	{ "mremap", hazard_mremap },
	{ "hwpoison", hazard_hwpoison },
	{ "uffd", hazard_uffd },
	{ "mlock", hazard_mlock },
	{ "sparse", hazard_sparse },
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
