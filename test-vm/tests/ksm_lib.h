/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the KSM tests share beyond the harness (ktap.h): files, memory
 * with its shadow copies, pagemap and kpageflags, the per-process KSM
 * files, the tunables of /sys/kernel/mm/ksm, waiting for ksmd's scans,
 * memory cgroups, and the two-process A/B driver.
 *
 * KSM tests start with ksm_begin(): it saves every tunable of
 * /sys/kernel/mm/ksm and, at exit (also on kt_die()), kills the children
 * made with kt_fork(), unmerges everything with run=2, puts every tunable
 * back and checks that the counters are back to zero: the kernel's own
 * ksm_tests compare global counters, so nothing may be left behind.
 */
#ifndef KSM_LIB_H
#define KSM_LIB_H

#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "ktap.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif
#define KT_MPOL_MF_MOVE_ALL	(1 << 2)

/* ---- files ---------------------------------------------------------- */

/* Read a file into @buf without its trailing newline; 0 or -errno. */
static inline int kt_read_str(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	buf[0] = 0;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = 0;
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	return 0;
}

/* Read a number from a sysfs or proc file; -1 when absent. */
static inline long kt_read_long(const char *path)
{
	char buf[64];

	if (kt_read_str(path, buf, sizeof(buf)) || !buf[0])
		return -1;
	return strtol(buf, NULL, 10);
}

/* Write a string to a file; returns 0 or -errno. */
static inline int kt_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * Seconds to run: @argv[1] if given and positive, else the number after
 * @key ("ksm.soak=") on the kernel command line, else @dflt.
 */
static inline int kt_seconds(int argc, char **argv, const char *key,
			     int dflt)
{
	char cmdline[4096], *p;
	int seconds = argc > 1 ? atoi(argv[1]) : 0;

	if (seconds > 0)
		return seconds;
	kt_read_str("/proc/cmdline", cmdline, sizeof(cmdline));
	p = strstr(cmdline, key);
	seconds = p ? atoi(p + strlen(key)) : 0;
	return seconds > 0 ? seconds : dflt;
}

/* A /proc/vmstat counter; -1 when absent. */
static inline long kt_vmstat(const char *name)
{
	char key[64];
	long v, found = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", key, &v) == 2)
		if (!strcmp(key, name))
			found = v;
	fclose(f);
	return found;
}

/* ---- memory --------------------------------------------------------- */

static inline size_t kt_ps(void)
{
	return (size_t)getpagesize();
}

/* A private anonymous mapping of @n pages. */
static inline char *kt_map(size_t n)
{
	char *p = mmap(NULL, n * kt_ps(), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		kt_die("mmap");
	return p;
}

/*
 * A private anonymous mapping of @n pages at @at exactly: processes that
 * each map their own pages at one address let the parent compare their
 * frames in /proc/<pid>/pagemap.
 */
static inline char *kt_map_at(void *at, size_t n)
{
	char *p = mmap(at, n * kt_ps(), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		       -1, 0);

	if (p != at)
		kt_die("mmap at a fixed address");
	return p;
}

/* Fill a page with a pattern derived from a (non-zero) seed, reproducibly. */
static inline void kt_fill(void *page, size_t len, uint64_t seed)
{
	uint64_t *w = page;
	size_t i;

	for (i = 0; i < len / sizeof(*w); i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		w[i] = seed;
	}
}

/*
 * The shadow of @n pages at @mem: a private malloc'd copy.  It is made
 * unmergeable, so that PR_SET_MEMORY_MERGE does not merge it with the
 * memory it mirrors.
 */
static inline char *kt_shadow(const char *mem, size_t n)
{
	size_t ps = kt_ps(), len = n * ps;
	char *s = malloc(len + 2 * ps);
	uintptr_t lo, hi;

	if (!s)
		kt_die("malloc");
	memcpy(s, mem, len);
	/* glibc serves this from its own mmap: its pages are ours */
	lo = ((uintptr_t)s + ps - 1) & ~(ps - 1);
	hi = ((uintptr_t)s + len) & ~(ps - 1);
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_UNMERGEABLE);
	return s;
}

/* Write one byte to memory and to its shadow. */
static inline void kt_poke(char *mem, char *shadow, size_t off, char v)
{
	mem[off] = v;
	shadow[off] = v;
}

/*
 * Where a page @m differs from its shadow @s: the offset of the first
 * byte that differs, and in *@ndiff how many bytes differ from there on.
 */
static inline size_t kt_page_diff(const char *m, const char *s,
				  size_t *ndiff)
{
	size_t ps = kt_ps(), off, o;

	for (off = 0; off < ps && m[off] == s[off]; off++)
		;
	for (o = off, *ndiff = 0; o < ps; o++)
		*ndiff += m[o] != s[o];
	return off;
}

/* Pages of @mem that differ from @shadow; the first one is reported. */
static inline int kt_diff(const char *mem, const char *shadow, size_t n,
			  const char *what)
{
	size_t ps = kt_ps(), i;
	int bad = 0;

	for (i = 0; i < n; i++) {
		if (!memcmp(mem + i * ps, shadow + i * ps, ps))
			continue;
		if (!bad++)
			kt_note("%s: page %zu differs from its shadow", what, i);
	}
	return bad;
}

/* ---- SIGBUS --------------------------------------------------------- */

static sigjmp_buf kt_bus_env;

static inline void kt_on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(kt_bus_env, 1);
}

/*
 * Call @fn(@arg) with SIGBUS caught; whether SIGBUS came.  Used by
 * kt_sigbus() to touch a page that may be poisoned.
 */
static inline int kt_catch_bus(void (*fn)(void *), void *arg)
{
	struct sigaction sa = { .sa_handler = kt_on_sigbus }, old;
	volatile int bus = 0;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(kt_bus_env, 1))
		bus = 1;
	else
		fn(arg);
	sigaction(SIGBUS, &old, NULL);
	return bus;
}

static inline void kt_read_byte(void *p)
{
	(void)*(volatile char *)p;
}

/* Whether reading the byte at @p raises SIGBUS. */
static inline int kt_sigbus(void *p)
{
	return kt_catch_bus(kt_read_byte, p);
}

/* ---- pagemap -------------------------------------------------------- */

#define KT_PM_PRESENT	(1ULL << 63)
#define KT_PM_SWAP	(1ULL << 62)
#define KT_PM_PFN	((1ULL << 55) - 1)

/* The pagemap entries of @n pages from @addr; 0 or -1. */
static inline int kt_pagemap(const void *addr, size_t n, uint64_t *ent)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	off_t off = (uintptr_t)addr / kt_ps() * sizeof(*ent);
	ssize_t len = n * sizeof(*ent);
	int ret = 0;

	if (fd < 0)
		return -1;
	if (pread(fd, ent, len, off) != len)
		ret = -1;
	close(fd);
	return ret;
}

/* Frames of @n pages from @addr in process @pid (0: self), 0 if absent. */
static inline void kt_pfns_of(pid_t pid, const void *addr, size_t n,
			      uint64_t *pfn)
{
	char path[64];
	off_t off = (uintptr_t)addr / kt_ps() * sizeof(*pfn);
	ssize_t len = n * sizeof(*pfn);
	size_t i;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid ? pid : getpid());
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, pfn, len, off) != len)
		memset(pfn, 0, len);
	if (fd >= 0)
		close(fd);
	for (i = 0; i < n; i++)
		pfn[i] = (pfn[i] & KT_PM_PRESENT) ? pfn[i] & KT_PM_PFN : 0;
}

/* Physical frame of a virtual address (needs root); 0 if not present. */
static inline uint64_t kt_pfn(const void *addr)
{
	uint64_t pfn;

	kt_pfns_of(0, addr, 1, &pfn);
	return pfn;
}

/* Frames of @n pages from @addr, 0 for pages not present. */
static inline void kt_pfns(const void *addr, size_t n, uint64_t *pfn)
{
	kt_pfns_of(0, addr, n, pfn);
}

static inline int kt_swapped(const void *addr)
{
	uint64_t ent = 0;

	if (kt_pagemap(addr, 1, &ent))
		return 0;
	return !!(ent & KT_PM_SWAP);
}

/* The /proc/kpageflags word of frame @pfn; 0 if it cannot be read. */
static inline uint64_t kt_kpageflags(uint64_t pfn)
{
	int fd = open("/proc/kpageflags", O_RDONLY);
	uint64_t flags = 0;

	if (fd < 0)
		return 0;
	if (pread(fd, &flags, sizeof(flags), pfn * sizeof(flags)) !=
	    sizeof(flags))
		flags = 0;
	close(fd);
	return flags;
}

#define KT_KPF_ANON	(1ULL << 12)
#define KT_KPF_KSM	(1ULL << 21)

/* How many frames of @pfn[0..n) are 0 or also appear elsewhere in it. */
static inline int kt_pfn_dups(const uint64_t *pfn, size_t n)
{
	size_t i, j;
	int dups = 0;

	for (i = 0; i < n; i++) {
		if (!pfn[i]) {
			dups++;
			continue;
		}
		for (j = 0; j < n; j++)
			if (j != i && pfn[j] == pfn[i])
				break;
		dups += j < n;
	}
	return dups;
}

/* NUMA node a page is on (move_pages query), or -errno. */
static inline int kt_page_node(void *addr)
{
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, &addr, NULL, &status, 0))
		return -errno;
	return status;
}

/* ---- per-process KSM files ------------------------------------------ */

/*
 * A field of /proc/<pid>/ksm_stat (pid 0: self): its number, 1/0 for
 * yes/no, -1 if unreadable and -2 if the kernel has no such field.
 */
static inline long kt_ksm_stat(pid_t pid, const char *field)
{
	char path[64], key[64], val[64];
	long found = -2;
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/ksm_stat");
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fscanf(f, "%63s %63s", key, val) == 2) {
		size_t k = strlen(key);

		if (k && key[k - 1] == ':')
			key[k - 1] = 0;
		if (strcmp(key, field))
			continue;
		if (!strcmp(val, "yes"))
			found = 1;
		else if (!strcmp(val, "no"))
			found = 0;
		else
			found = strtol(val, NULL, 10);
	}
	fclose(f);
	return found;
}

/* /proc/<pid>/ksm_merging_pages (pid 0: self); -1 if unreadable. */
static inline long kt_merging_pages(pid_t pid)
{
	char path[64];

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/ksm_merging_pages", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/ksm_merging_pages");
	return kt_read_long(path);
}

/*
 * Sum of an smaps field ("KSM", "Rss", ...) in kB over the VMAs of
 * /proc/self/smaps that overlap [@addr, @addr + @len); -1 if none does.
 */
static inline long kt_smaps_kb(const void *addr, size_t len, const char *field)
{
	unsigned long lo, hi, a = (uintptr_t)addr, b = a + len;
	char line[512], key[64];
	long kb, sum = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	snprintf(key, sizeof(key), "%s: %%ld kB", field);
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = lo < b && hi > a;
		} else if (in && sscanf(line, key, &kb) == 1) {
			sum = (sum < 0 ? 0 : sum) + kb;
		}
	}
	if (f)
		fclose(f);
	return sum;
}

/* Whether every VMA overlapping the range has @flag in its VmFlags. */
static inline int kt_vma_has_flag(const void *addr, size_t len,
				  const char *flag)
{
	unsigned long lo, hi, a = (uintptr_t)addr, b = a + len;
	char line[512], want[8];
	int in = 0, seen = 0, all = 1;
	FILE *f = fopen("/proc/self/smaps", "r");

	snprintf(want, sizeof(want), " %s", flag);
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = lo < b && hi > a;
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			seen++;
			line[strcspn(line, "\n")] = ' ';
			all &= !!strstr(line + 8, want);
		}
	}
	if (f)
		fclose(f);
	return seen && all;
}

/* ---- /sys/kernel/mm/ksm ---------------------------------------------- */

#define KSM_DIR "/sys/kernel/mm/ksm/"

static inline long ksm_get(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	return kt_read_long(path);
}

static inline int ksm_get_str(const char *name, char *buf, size_t len)
{
	char path[128];

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	return kt_read_str(path, buf, len);
}

static inline int ksm_set(const char *name, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	return kt_write(path, val);
}

static inline int ksm_set_long(const char *name, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	return ksm_set(name, buf);
}

/* Set a tunable the test relies on; a refusal ends the test. */
static inline void ksm_must_set(const char *name, long v)
{
	int err = ksm_set_long(name, v);

	if (err) {
		errno = -err;
		kt_note("writing %ld to %s refused", v, name);
		kt_die(name);
	}
}

static inline void ksm_require(void)
{
	if (access(KSM_DIR "run", F_OK))
		kt_skip("this kernel has no KSM");
	if (geteuid())
		kt_skip("needs root");
}

static inline int ksm_numa(void)
{
	return !access(KSM_DIR "merge_across_nodes", F_OK);
}

/* The global counters a test must leave at zero. */
static const char *const ksm_counters[] = {
	"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
	"ksm_zero_pages", "stable_node_chains", "stable_node_dups",
};
#define KSM_NCOUNTERS ARRAY_SIZE(ksm_counters)

static inline void ksm_print(const char *tag)
{
	kt_note("[%s] shared=%ld sharing=%ld unshared=%ld volatile=%ld "
		"zero=%ld chains=%ld dups=%ld full_scans=%ld profit=%ld", tag,
		ksm_get("pages_shared"), ksm_get("pages_sharing"),
		ksm_get("pages_unshared"), ksm_get("pages_volatile"),
		ksm_get("ksm_zero_pages"), ksm_get("stable_node_chains"),
		ksm_get("stable_node_dups"), ksm_get("full_scans"),
		ksm_get("general_profit"));
}

static inline int ksm_all_zero(void)
{
	size_t i;

	for (i = 0; i < KSM_NCOUNTERS; i++)
		if (ksm_get(ksm_counters[i]) != 0)
			return 0;
	return 1;
}

/* Check that every counter is zero; each one that is not is named. */
static inline void ksm_check_zero(const char *when)
{
	size_t i;
	int bad = 0;
	long v;

	for (i = 0; i < KSM_NCOUNTERS; i++) {
		v = ksm_get(ksm_counters[i]);
		if (v)
			kt_note("%s: %s is %ld, not 0", when, ksm_counters[i],
				v);
		bad += v != 0;
	}
	kt_check(!bad, "%s: all KSM counters are 0", when);
}

/*
 * Full scans done so far.  run=2 resets the count: then the reference
 * point moves with it.
 */
static inline int ksm_scans_since(long *start)
{
	long now = ksm_get("full_scans");

	if (now < *start)
		*start = 0;
	return now - *start;
}

/*
 * Let ksmd finish @n more full scans; 0 on success, -1 when @seconds
 * passed or when ksmd stays idle for 5 s (nothing registered to scan).
 */
static inline int ksm_wait_scans(int n, int seconds)
{
	long start = ksm_get("full_scans"), seen = -1, work;
	time_t end = time(NULL) + seconds, idle = time(NULL) + 5;

	for (;;) {
		if (ksm_scans_since(&start) >= n)
			return 0;
		work = ksm_get("pages_scanned") + ksm_get("full_scans");
		if (work != seen) {
			seen = work;
			idle = time(NULL) + 5;
		}
		if (time(NULL) > idle)
			return -1;	/* idle: nothing to scan */
		if (time(NULL) > end)
			break;
		usleep(20000);
	}
	kt_note("ksmd did not finish %d full scan(s) in %d s", n, seconds);
	return -1;
}

/*
 * Whether @cond(@arg) holds now, sampled for up to 2 s.  The counters are
 * read without ksmd's lock: while ksmd works on a page, that page's item
 * is in no tree for a moment (at sleep_millisecs=0 it nearly always is).
 * A real miscount shows in every sample, a page in transit does not.
 */
static inline int ksm_holds(int (*cond)(void *), void *arg)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (cond(arg))
			return 1;
		usleep(20000);
	}
	return 0;
}

/*
 * Wait until @cond(@arg) holds, for at most @scans full scans of ksmd
 * but at least 5 s (passes over small workloads at sleep_millisecs=0 take
 * less than a millisecond, and some cleanup runs on a timer), and never
 * more than @seconds (when nothing is registered with ksmd, no scan ever
 * completes).  Once it holds, let one more full scan pass and look again,
 * so that a picture still moving is not taken for the final one.
 * Returns 0 if @cond held at the end.
 */
static inline int ksm_wait_for(int (*cond)(void *), void *arg, int scans,
			       int seconds)
{
	long start = ksm_get("full_scans");
	time_t now, min = time(NULL) + 5, end = time(NULL) + seconds;

	for (;;) {
		if (cond(arg)) {
			if (ksm_get("run") == 1)
				ksm_wait_scans(1, seconds);
			return ksm_holds(cond, arg) ? 0 : -1;
		}
		now = time(NULL);
		if ((ksm_scans_since(&start) > scans && now > min) || now > end)
			return -1;
		usleep(20000);
	}
}

struct ksm_want {
	long shared, sharing, unshared;		/* -1: any */
};

static inline int ksm_counts_are(void *arg)
{
	struct ksm_want *w = arg;

	return (w->shared < 0 || ksm_get("pages_shared") == w->shared) &&
	       (w->sharing < 0 || ksm_get("pages_sharing") == w->sharing) &&
	       (w->unshared < 0 || ksm_get("pages_unshared") == w->unshared);
}

/* Wait for exact pages_shared/pages_sharing/pages_unshared; 0 if reached. */
static inline int ksm_wait_counts(long shared, long sharing, long unshared,
				  int scans, int seconds)
{
	struct ksm_want w = { shared, sharing, unshared };

	return ksm_wait_for(ksm_counts_are, &w, scans, seconds);
}

/*
 * Wait for exact counters (-1: any value), then check them, with the
 * values read after the wait.  Returns whether they were reached.
 */
static inline int ksm_expect(const char *when, long shared, long sharing,
			     long unshared)
{
	int ok = !ksm_wait_counts(shared, sharing, unshared, 10, 300);

	if (ok) {
		kt_check(1, "%s: pages_shared %ld, pages_sharing %ld, "
			 "pages_unshared %ld, as expected", when,
			 shared, sharing, unshared);
		return 1;
	}
	ksm_print(when);
	kt_check(0, "%s: pages_shared %ld (want %ld), pages_sharing %ld "
		 "(want %ld), pages_unshared %ld (want %ld)", when,
		 ksm_get("pages_shared"), shared, ksm_get("pages_sharing"),
		 sharing, ksm_get("pages_unshared"), unshared);
	return 0;
}

static inline int ksm_zero_cond(void *arg)
{
	(void)arg;
	return ksm_all_zero();
}

/* ---- saving and restoring the global state ------------------------- */

static const char *const ksm_tunables[] = {
	"max_page_sharing", "merge_across_nodes", "pages_to_scan",
	"sleep_millisecs", "use_zero_pages", "smart_scan",
	"stable_node_chains_prune_millisecs", "advisor_max_cpu",
	"advisor_min_pages_to_scan", "advisor_max_pages_to_scan",
	"advisor_target_scan_time",
	/* ours, beyond 6.12: absent (and skipped) on the stock kernel */
	"scrub_pages_per_batch", "zero_pages_across_domains",
};
#define KSM_NTUNABLES ARRAY_SIZE(ksm_tunables)

static struct {
	pid_t owner;
	long run;
	char advisor[32];
	long val[KSM_NTUNABLES];
} ksm_saved;

/* Which advisor_mode is selected: the word in brackets. */
static inline void ksm_advisor_mode(char *buf, size_t len)
{
	char raw[64], *a, *b;

	ksm_get_str("advisor_mode", raw, sizeof(raw));
	a = strchr(raw, '[');
	b = a ? strchr(a, ']') : NULL;
	if (!a || !b) {
		snprintf(buf, len, "?");
		return;
	}
	*b = 0;
	snprintf(buf, len, "%s", a + 1);
}

/*
 * Put everything back: children killed, every page unmerged (run=2),
 * the tunables as they were, run as it was; then check that it worked.
 */
static inline void ksm_restore(void)
{
	char now[32];
	size_t i;
	long v;

	kt_kill_kids();
	ksm_set("advisor_mode", "none");
	if (ksm_set("run", "2"))
		kt_check(0, "restore: run=2 refused");
	/* nothing is merged now: the domain policy can go back */
	if (!access(KSM_DIR "merge_domain", F_OK) &&
	    ksm_set("merge_domain", "global"))
		kt_check(0, "restore: merge_domain=global refused");
	for (i = 0; i < KSM_NTUNABLES; i++) {
		if (ksm_saved.val[i] < 0 || ksm_get(ksm_tunables[i]) ==
		    ksm_saved.val[i])
			continue;
		ksm_set_long(ksm_tunables[i], ksm_saved.val[i]);
		v = ksm_get(ksm_tunables[i]);
		if (v != ksm_saved.val[i])
			kt_check(0, "restore: %s is %ld, was %ld",
				 ksm_tunables[i], v, ksm_saved.val[i]);
	}
	ksm_check_zero("after the test (run=2)");
	if (strcmp(ksm_saved.advisor, "none"))
		ksm_set("advisor_mode", ksm_saved.advisor);
	ksm_set_long("run", ksm_saved.run);
	ksm_advisor_mode(now, sizeof(now));
	kt_check(ksm_get("run") == ksm_saved.run &&
		 !strcmp(now, ksm_saved.advisor),
		 "restore: run=%ld, advisor_mode %s, as before the test",
		 ksm_get("run"), now);
}

static inline void ksm_restore_atexit(void)
{
	if (getpid() != ksm_saved.owner)
		return;
	ksm_restore();
	/*
	 * atexit runs after main's return value was chosen: redo it, with
	 * the plan first, since _exit() skips the harness's own handler.
	 */
	if (kt_failures) {
		kt_end();
		_exit(KT_FAIL);
	}
}

/*
 * Start a KSM test: skip without KSM or root, save the state, and make
 * sure nothing is merged before the test begins.
 */
static inline void ksm_begin(void)
{
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ksm_require();
	ksm_saved.owner = getpid();
	ksm_saved.run = ksm_get("run");
	ksm_advisor_mode(ksm_saved.advisor, sizeof(ksm_saved.advisor));
	for (i = 0; i < KSM_NTUNABLES; i++)
		ksm_saved.val[i] = ksm_get(ksm_tunables[i]);
	atexit(ksm_restore_atexit);
	if (!ksm_all_zero()) {
		ksm_print("found");
		kt_check(0, "KSM counters are 0 before the test");
		ksm_set("run", "2");
	}
}

/*
 * Common scanning setup: fast scanning, ksmd running.  smart_scan is off:
 * pages it skips leave the unstable tree, and pages_unshared with them,
 * so that counts would depend on how many passes were made.
 */
static inline void ksm_go(unsigned int pages, unsigned int sleep_ms)
{
	ksm_must_set("smart_scan", 0);
	ksm_must_set("pages_to_scan", pages);
	ksm_must_set("sleep_millisecs", sleep_ms);
	ksm_must_set("run", 1);
}


/* ---- memory cgroups ------------------------------------------------- */

#define KT_CG	"/sys/fs/cgroup/"

/* Memory cgroups below the root, or skip the test. */
static inline void kt_cg_memory(void)
{
	if (kt_write(KT_CG "cgroup.subtree_control", "+memory"))
		kt_skip("no memory cgroup controller");
}

/* Make cgroup @cg (it may be there already); the test dies if it can't. */
static inline void kt_cg_make(const char *cg)
{
	char path[160];

	snprintf(path, sizeof(path), KT_CG "%s", cg);
	if (mkdir(path, 0755) && errno != EEXIST)
		kt_die("mkdir of a memory cgroup");
}

/* Remove cgroup @cg; it must have no tasks left. */
static inline void kt_cg_remove(const char *cg)
{
	char path[160];

	snprintf(path, sizeof(path), KT_CG "%s", cg);
	rmdir(path);
}

/* Write @val to @file of cgroup @cg; 0 or -errno. */
static inline int kt_cg_write(const char *cg, const char *file,
			      const char *val)
{
	char path[160];

	snprintf(path, sizeof(path), KT_CG "%s/%s", cg, file);
	return kt_write(path, val);
}

/* A number from @file of cgroup @cg; -1 when absent. */
static inline long kt_cg_read(const char *cg, const char *file)
{
	char path[160];

	snprintf(path, sizeof(path), KT_CG "%s/%s", cg, file);
	return kt_read_long(path);
}

/* A counter of @cg's memory.events ("oom_kill", "max", ...); -1 if none. */
static inline long kt_cg_event(const char *cg, const char *key)
{
	char path[160], k[64];
	long v, found = -1;
	FILE *f;

	snprintf(path, sizeof(path), KT_CG "%s/memory.events", cg);
	f = fopen(path, "r");
	while (f && fscanf(f, "%63s %ld", k, &v) == 2)
		if (!strcmp(k, key))
			found = v;
	if (f)
		fclose(f);
	return found;
}

/* The calling process moves into cgroup @cg, or the test dies. */
static inline void kt_cg_join(const char *cg)
{
	if (kt_cg_write(cg, "cgroup.procs", "0"))
		kt_die("joining a memory cgroup");
}

/* ---- the A/B driver ------------------------------------------------- */

/*
 * Two processes, A and B, each with ->npages private pages of contents
 * ->seed(who, i) chooses (0: a zero page), a shadow copy of them, and the
 * pages made mergeable; the parent drives them with commands, each
 * answered with the child's failed checks so far.  KSM_AB_CHECK compares
 * the pages with their shadow; a test's own commands start at KSM_AB_CMD
 * and go to ->serve().  Both exit at end of file on their pipe.
 */
enum { KSM_AB_CHECK = 1, KSM_AB_CMD };

struct ksm_ab {
	int who;			/* 0: A, 1: B */
	char *mem, *shadow;
};

struct ksm_ab_ops {
	size_t npages;
	uint64_t (*seed)(int who, int i);
	/* before the pages are mapped; nonzero: they are mergeable already */
	int (*start)(struct ksm_ab *c);
	void (*serve)(struct ksm_ab *c, long cmd);
};

/* Map and fill a child's pages, shadow them and make them mergeable. */
static inline void ksm_ab_map(struct ksm_ab *c, const struct ksm_ab_ops *ops,
			      int mergeable)
{
	size_t ps = kt_ps(), i;
	uint64_t seed;

	c->mem = kt_map(ops->npages);
	for (i = 0; i < ops->npages; i++) {
		seed = ops->seed(c->who, i);
		if (seed)
			kt_fill(c->mem + i * ps, ps, seed);
		else
			memset(c->mem + i * ps, 0, ps);	/* faulted in, zero */
	}
	c->shadow = kt_shadow(c->mem, ops->npages);
	if (!mergeable && madvise(c->mem, ops->npages * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
}

static inline __attribute__((noreturn))
void ksm_ab_child(struct kt_proc *p, int who, const struct ksm_ab_ops *ops)
{
	struct ksm_ab c = { .who = who };
	int mergeable = 0;
	long cmd;

	kt_who = who ? "B: " : "A: ";
	if (ops->start)
		mergeable = ops->start(&c);
	ksm_ab_map(&c, ops, mergeable);
	kt_put(p->up, 0);
	while ((cmd = kt_get(p->down)) > 0) {
		if (cmd == KSM_AB_CHECK)
			kt_check(kt_diff(c.mem, c.shadow, ops->npages,
					 "memory") == 0,
				 "every page matches the shadow");
		else if (ops->serve)
			ops->serve(&c, cmd);
		kt_put(p->up, kt_failures);
	}
	kt_child_exit();
}

/* Start A, then B, each set up before the next; returns in the parent. */
static inline void ksm_ab_start(struct kt_proc *kid,
				const struct ksm_ab_ops *ops)
{
	int who = kt_spawn_ready(kid, 2);

	if (who >= 0)
		ksm_ab_child(&kid[who], who, ops);
}

/* Ask A, then B (not B if A failed); whether either had failed checks. */
static inline int ksm_ab_ask(struct kt_proc *kid, long cmd)
{
	return kt_ask(&kid[0], cmd) != 0 || kt_ask(&kid[1], cmd) != 0;
}

/* End both children, checking that each exits cleanly. */
static inline void ksm_ab_finish(struct kt_proc *kid)
{
	int who;

	for (who = 0; who < 2; who++)
		kt_check(kt_finish(&kid[who]) == 0, "%c exits cleanly",
			 "AB"[who]);
}

#endif /* KSM_LIB_H */
