// SPDX-License-Identifier: GPL-2.0
/*
 * bench WORKLOAD [RUNS]: one workload of `make bench`, run RUNS times
 * (default 1) in the test VM with the same settings on every kernel.
 * ksm.bench_runs=<first>:<count> on the kernel command line overrides
 * RUNS: runs numbered first..first+count-1 (scripts/bench boots one VM
 * per run and kernel, alternating the kernels).
 * scripts/bench boots the stock kernel and ours with the same initramfs and
 * compares what this prints (it takes the median of the runs):
 *   @@BENCH <workload> <metric> <value>     one measurement per run ("NA")
 *   @@SAMPLE <workload> <run> <t> <saved> <full_scans> <ksmd_cpu_s>
 * t is seconds since ksmd was started (run=1), saved is pages_sharing +
 * ksm_zero_pages, full_scans and ksmd's CPU count from the same moment.
 *
 * Settings, identical on both kernels, for our own workloads:
 *   pages_to_scan=1000 sleep_millisecs=20: a 1000-page batch every 20 ms,
 *   10x the defaults' batch (TCG is slow; the default would take minutes)
 *   with the default nap, so both engines get the same duty cycle and
 *   their CPU cost per batch shows in the time they need.
 *   max_page_sharing=256, use_zero_pages=0, merge_across_nodes=1,
 *   smart_scan=1, advisor_mode=none: the defaults.
 * The kernel's ksm_tests set their own (sleep_millisecs=0, pages_to_scan
 * from -p).  Before a workload everything is unmerged (run=2) and ksmd
 * stopped; the tunables are put back as found at the end (ktest.h).
 * With two CPUs or more, ksmd is pinned to CPU 0 and this program and its
 * workers to the last CPU, so that where the scheduler happens to put
 * them does not decide how much CPU ksmd gets; corun-full puts one
 * co-runner on each CPU.  ksm_tests -P polls full_scans in a busy loop:
 * it runs at nice 19 on ksmd's CPU, so that it neither takes ksmd's CPU
 * (ksmd runs at nice 5) nor makes every TLB flush of a merge an IPI to a
 * busy vCPU, which under TCG on a loaded host costs milliseconds.
 * ksm_tests -C times its writes itself: it runs on the last CPU.
 * ksmd's own CPU mask is restored at exit.
 *
 * Workloads ("possible" is the saving their construction allows: a group
 * of k identical pages saves k - ceil(k / max_page_sharing)):
 *   hash     yardstick: a userspace xxhash64 of 4 KiB pages
 *   ksm-P    the selftest: ksm_tests -P -s 256 -p 1000
 *   same     8 processes x 32 MiB, page i identical in all of them
 *   mixed    4 x 64 MiB: 40% pages shared by all 4, 20% zero, 40% unique
 *   churn    mixed, and a quarter of the unique pages (10% of all) are
 *            rewritten every 100 ms with new unique content
 *   unique   2 x 128 MiB, 2% shared by the two, 98% unique: the cost of
 *            scanning when there is little to gain (runs >= 5 full scans)
 *   cow      65536 pages in 32768 equal pairs, merged, then ksmd stopped
 *            and one byte written to each page: COW faults on KSM pages
 *   ksm-C    the selftest: ksm_tests -C (2000 equal pairs)
 *   corun    a memory-bound program (read-modify-write sweeps over 64 MiB,
 *            not mergeable) alone for 4 s, then 12 s beside ksmd merging
 *            4 x 32 MiB of the mixed layout, then alone again for 4 s;
 *            ksmd has the other vCPU to itself
 *   corun-full  the same with one copy of the program per CPU, so that
 *            ksmd's CPU time is taken from it
 *   sparse   a 1 TiB MAP_NORESERVE mapping, registered whole, with 512
 *            pages populated 2 GiB apart (256 equal pairs): ksmd's CPU
 *            per pass once merged (cpu_per_pass_ms, over 10 s of
 *            passes), then the time of
 *            MADV_UNMERGEABLE over the whole range (unmerge_s) and, once
 *            merged again, of writing 2 to run (run2_s).  Each is cut
 *            off by a signal after SPARSE_CAP s and then reported as the
 *            cap with *_capped 1 (a lower bound)
 *   vmas     20,000 pages, every other one made read-only (20,000 VMAs
 *            under one anon_vma), page i equal to page i + 10,000;
 *            merged, then ksmd stopped and the process forked (40,000
 *            VMAs in the anon_vma's tree).  One rmap walk of a KSM page
 *            is timed through page_idle (writing its bit to
 *            /sys/kernel/mm/page_idle/bitmap walks its mappings):
 *            walk_ms_median, walk_ms_max over 64 KSM pages; and
 *            writer_ms_max, the longest an mprotect() of the same
 *            anon_vma (which takes its lock for writing) took while
 *            the walks ran
 *   growth-256, growth-1024, growth-2048   the mixed layout in 4
 *            processes of 64, 256 and 512 MiB: the same metrics as mixed,
 *            to see cost per scanned page and saved pages per CPU second
 *            as the amount of memory grows
 * Diagnostics, not in make bench's list:
 *   busy     4 x 16 MiB of the mixed layout whose processes keep running
 *            (a getppid() loop on the last CPU, their memory untouched)
 *            while ksmd merges them, so that the TLB flush of a merge
 *            often has to reach the other vCPU
 *   busy1    the same with one process of 8192 equal pairs: nearly every
 *            flush is an IPI.  Under TCG on a busy host each costs
 *            milliseconds, on both kernels: these measure QEMU more than
 *            KSM, which is why make bench keeps its processes asleep.
 *
 * Metrics of a merging workload, counted from run=1; a run ends two full
 * scans after 95% was reached (unique: after 5 scans at least) or at 240 s:
 *   time_to_50_s, time_to_95_s  until saved >= 50% / 95% of possible
 *   scans_to_50, scans_to_95    full scans done by then, plus the part of
 *                               the current one (pages scanned in it/pages)
 *   cpu_to_95_s                 ksmd's CPU seconds until 95%
 *   saved_per_cpu_s             pages saved at 95% / cpu_to_95_s
 *   max_saved_pct               the most saved seen, % of possible
 *   cpu_ns_per_scanned_page     ksmd's CPU in the run / pages_scanned
 *   hash_ns_per_page            the yardstick (xxh64 of a page in this
 *                               program), timed just before ksmd starts
 *   scan_cost_hashes            cpu_ns_per_scanned_page / hash_ns_per_page
 *   cpu_first_pass_s, cpu_last_pass_s   ksmd's CPU in the first / last pass
 *   meta_bytes_per_page         peak growth of the slab caches named ksm*
 *                               (active objects x object size) / pages
 *   kmem_bytes_per_page         peak growth of Slab + VmallocUsed / pages:
 *                               also what an engine keeps outside its caches
 *   cow_ksm                     COW faults on KSM pages (/proc/vmstat)
 *                               while ksmd ran: writes that undid a merge
 */
#define _GNU_SOURCE
#include "ktest.h"
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>

#define MPS		256	/* max_page_sharing used */
#define SPARSE_CAP	300	/* s: longest a sparse unmerge may take */
#define SAMPLE_MS	50
#define PAGE		4096

static double t_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

static const char *wl = "?";		/* the workload being run */
static int run_no = 1;			/* which run of it */

static void metric(const char *name, double v)
{
	printf("@@BENCH %s %s %.6g\n", wl, name, v);
}

static void metric_na(const char *name)
{
	printf("@@BENCH %s %s NA\n", wl, name);
}

/* ---- what is measured ------------------------------------------------ */

static pid_t ksmd_pid;

static pid_t find_ksmd(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char path[300], comm[32];
	pid_t pid = 0;

	while (d && (e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		if (!kt_read_str(path, comm, sizeof(comm)) &&
		    !strcmp(comm, "ksmd")) {
			pid = atoi(e->d_name);
			break;
		}
	}
	if (d)
		closedir(d);
	return pid;
}

/* ---- CPU placement ---------------------------------------------------- */

static long ncpu;
static cpu_set_t ksmd_mask;
static int ksmd_pinned;

static void pin(pid_t pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(pid, sizeof(set), &set))
		printf("# could not pin %d to CPU %d: %s\n", pid, cpu,
		       strerror(errno));
}

static void unpin_ksmd(void)
{
	if (ksmd_pinned && getpid() == ksm_saved.owner)
		sched_setaffinity(ksmd_pid, sizeof(ksmd_mask), &ksmd_mask);
}

static void place(void)
{
	if (ncpu < 2)
		return;
	if (!sched_getaffinity(ksmd_pid, sizeof(ksmd_mask), &ksmd_mask)) {
		ksmd_pinned = 1;
		atexit(unpin_ksmd);
		pin(ksmd_pid, 0);
	}
	pin(0, ncpu - 1);
}

/* ksmd's utime + stime in seconds (/proc/<pid>/stat fields 14 and 15). */
static double ksmd_cpu(void)
{
	char path[64], buf[512], *p;
	unsigned long ut, st;

	snprintf(path, sizeof(path), "/proc/%d/stat", ksmd_pid);
	if (kt_read_str(path, buf, sizeof(buf)))
		return 0;
	p = strrchr(buf, ')');		/* comm may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

static long cnt(const char *name)
{
	long v = ksm_get(name);

	return v < 0 ? 0 : v;
}

static long saved_pages(void)
{
	return cnt("pages_sharing") + cnt("ksm_zero_pages");
}

/* Bytes of objects in the slab caches whose names start with "ksm". */
static long ksm_slab_bytes(void)
{
	FILE *f = fopen("/proc/slabinfo", "r");
	char line[512], name[64];
	long active, num, size, sum = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld %ld %ld", name, &active, &num,
			   &size) == 4 && !strncmp(name, "ksm", 3))
			sum += active * size;
	fclose(f);
	return sum;
}

/* Slab + vmalloc memory of the kernel, in bytes (/proc/meminfo). */
static long kmem_bytes(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char key[64];
	long v, sum = 0;

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld kB\n", key, &v) == 2)
		if (!strcmp(key, "Slab:") || !strcmp(key, "VmallocUsed:"))
			sum += v * 1024;
	fclose(f);
	return sum;
}

/* ---- xxhash64, the yardstick ------------------------------------------ */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t xround(uint64_t acc, uint64_t in)
{
	return rotl(acc + in * P2, 31) * P1;
}

static inline uint64_t xmerge(uint64_t acc, uint64_t v)
{
	return (acc ^ xround(0, v)) * P1 + P4;
}

/* XXH64 of a 4 KiB page (a multiple of 32 bytes: no tail). */
static uint64_t xxh64_page(const void *page, uint64_t seed)
{
	const uint64_t *w = page, *end = w + PAGE / 8;
	uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
	uint64_t h;

	for (; w < end; w += 4) {
		v1 = xround(v1, w[0]);
		v2 = xround(v2, w[1]);
		v3 = xround(v3, w[2]);
		v4 = xround(v4, w[3]);
	}
	h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
	h = xmerge(xmerge(xmerge(xmerge(h, v1), v2), v3), v4);
	h += PAGE;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

/* The best time, in seconds, of @rounds passes of xxh64 over @n pages. */
static double best_hash_s(const char *p, size_t n, int rounds)
{
	volatile uint64_t sink = 0;
	double t, best = 1e9;
	size_t i;

	while (rounds--) {
		t = t_now();
		for (i = 0; i < n; i++)
			sink += xxh64_page(p + i * PAGE, 0);
		t = t_now() - t;
		if (t < best)
			best = t;
	}
	(void)sink;
	return best;
}

/* Best time of 3 passes of xxh64 over 2048 pages, in ns per page. */
static double hash_ns(void)
{
	static char *p;
	size_t n = 2048, i;

	if (!p) {
		p = kt_map(n);
		for (i = 0; i < n; i++)
			kt_fill(p + i * PAGE, PAGE, i + 7);
	}
	return best_hash_s(p, n, 3) * 1e9 / n;
}

static double yard_ns;	/* hash_ns() taken before the current workload */

static int run_hash(void)
{
	size_t n = 16384, i;		/* 64 MiB: not a cache's worth */
	char *p = kt_map(n);
	double best;

	for (i = 0; i < n; i++)
		kt_fill(p + i * PAGE, PAGE, i + 1);
	best = best_hash_s(p, n, 5);
	metric("hash_ns_per_page", best * 1e9 / n);
	metric("hash_mib_s", n * PAGE / 1048576.0 / best);
	munmap(p, n * PAGE);
	return KT_PASS;
}

/* ---- state between workloads ------------------------------------------ */

/*
 * Variants of mixed on our engine only (files the stock kernel lacks):
 * merge_domain=process, and scrubbing off, to price domains and the
 * scrubber against the plain mixed run.
 */
static int per_process;		/* mixed-process */
static int no_scrub;		/* mixed-noscrub */

static void reset(void)
{
	time_t end = time(NULL) + 120;

	kt_kill_kids();
	ksm_set("advisor_mode", "none");
	ksm_set("run", "2");
	while (!ksm_all_zero() && time(NULL) < end)
		usleep(50000);
	if (!ksm_all_zero())
		ksm_print("not back to zero after run=2");
	ksm_set("run", "0");
	/* ours only; absent (and ignored) on the stock kernel */
	ksm_set("merge_domain", "global");
	ksm_set("scrub_pages_per_batch", "2");
}

static void configure(void)
{
	reset();
	ksm_must_set("max_page_sharing", MPS);
	ksm_must_set("use_zero_pages", 0);
	if (ksm_numa())
		ksm_must_set("merge_across_nodes", 1);
	ksm_set("smart_scan", "1");
	ksm_must_set("pages_to_scan", 1000);
	ksm_must_set("sleep_millisecs", 20);
	if (per_process)
		ksm_set("merge_domain", "process");
	if (no_scrub)
		ksm_set("scrub_pages_per_batch", "0");
}

/* ---- processes with mergeable memory ---------------------------------- */

enum layout { L_SAME, L_MIXED, L_CHURN, L_UNIQUE, L_PAIRS };
enum cls { C_SHARED, C_ZERO, C_UNIQUE, C_VOLATILE, C_PAIR };

static enum cls page_class(enum layout l, long i)
{
	int r;

	switch (l) {
	case L_SAME:
		return C_SHARED;
	case L_MIXED:
	case L_CHURN:
		r = i * 7 % 10;		/* every residue once per 10 pages */
		if (r < 4)
			return C_SHARED;
		if (r < 6)
			return C_ZERO;
		return l == L_CHURN && r == 9 ? C_VOLATILE : C_UNIQUE;
	case L_UNIQUE:
		return i * 7 % 50 == 0 ? C_SHARED : C_UNIQUE;
	case L_PAIRS:
		return C_PAIR;
	}
	return C_UNIQUE;
}

static long group_saving(long k)
{
	return k < 2 ? 0 : k - (k + MPS - 1) / MPS;
}

/* What merging can save: see the header comment. */
static long possible_saving(enum layout l, int nproc, long pages)
{
	long i, shared = 0, zero = 0, pairs = 0;

	for (i = 0; i < pages; i++) {
		enum cls c = page_class(l, i);

		shared += c == C_SHARED;
		zero += c == C_ZERO;
		pairs += c == C_PAIR && i % 2;
	}
	/* in a domain each, processes only merge their own zero pages */
	if (per_process)
		return nproc * group_saving(zero) + pairs * nproc;
	return shared * group_saving(nproc) + group_saving(zero * nproc) +
	       pairs * nproc;
}

struct ctl {
	volatile int ready;
	volatile int stop;
	volatile int go_write;
	volatile int busy;		/* workers spin instead of sleeping */
	volatile double write_s;
	volatile long bytes[4];		/* co-runners' progress */
};

static struct ctl *ctl;

static uint64_t seed_of(enum cls c, int proc, long i, long gen)
{
	switch (c) {
	case C_SHARED:
		return 0x5ead0000ULL + i;
	case C_PAIR:
		return 0x9a170000ULL + i / 2;
	default:
		return ((uint64_t)(proc + 1) << 40) + ((uint64_t)gen << 24) + i + 1;
	}
}

static void fill_page(char *page, enum cls c, int proc, long i, long gen)
{
	if (c == C_ZERO)
		memset(page, 0, PAGE);
	else
		kt_fill(page, PAGE, seed_of(c, proc, i, gen));
}

/* A child: its memory, filled, mergeable; rewrites its volatile pages. */
static void worker(enum layout l, int proc, long pages)
{
	char *p = kt_map(pages);
	long i, gen = 0;

	madvise(p, pages * PAGE, MADV_NOHUGEPAGE);
	for (i = 0; i < pages; i++)
		fill_page(p + i * PAGE, page_class(l, i), proc, i, 0);
	if (madvise(p, pages * PAGE, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	__sync_fetch_and_add(&ctl->ready, 1);
	while (ctl->busy && !ctl->stop && getppid() != 1)
		for (i = 0; i < 1000; i++)	/* busy, not touching p */
			syscall(SYS_getppid);
	while (!ctl->stop && getppid() != 1) {
		if (l == L_PAIRS && ctl->go_write) {
			double t = t_now();

			for (i = 0; i < pages; i++)
				p[i * PAGE] = 1;
			ctl->write_s = t_now() - t;
			ctl->go_write = 0;
		}
		if (l == L_CHURN) {
			gen++;
			for (i = 0; i < pages; i++)
				if (page_class(l, i) == C_VOLATILE)
					*(uint64_t *)(p + i * PAGE) =
						seed_of(C_VOLATILE, proc, i, gen);
		}
		usleep(100000);
	}
	_exit(0);
}

static void start_workers(enum layout l, int nproc, long pages)
{
	time_t end = time(NULL) + 300;
	int i;

	ctl->ready = ctl->stop = ctl->go_write = 0;
	yard_ns = hash_ns();	/* the yardstick, before anything runs */
	for (i = 0; i < nproc; i++)
		if (!kt_fork())
			worker(l, i, pages);
	while (ctl->ready < nproc && time(NULL) < end)
		usleep(20000);
	if (ctl->ready < nproc) {
		printf("not ok: workers did not get ready\n");
		exit(KT_FAIL);
	}
	sleep_s(0.5);
}

/* ---- following ksmd from run=1 on ------------------------------------- */

struct track {
	long possible, pages;
	double t0, cpu0;
	long scans0, scanned0, kmem0, slab0, cow0;
	double hash_ns;
	/* at the last sample */
	double t, cpu;
	long saved, saved_max, scans, scanned;
	/* thresholds */
	double t_th[2], cpu_th[2], scans_th[2];
	long saved_th[2];
	/* passes */
	long pass_start_scanned, last_scans;
	double pass_cpu_start, pass1_cpu, last_pass_cpu;
	long slab_peak, kmem_peak;
	int n;
};

static void track_begin(struct track *k, long possible, long pages)
{
	memset(k, 0, sizeof(*k));
	k->hash_ns = yard_ns;
	k->possible = possible;
	k->pages = pages;
	k->scans0 = cnt("full_scans");
	k->scanned0 = cnt("pages_scanned");
	k->cpu0 = ksmd_cpu();
	k->kmem0 = kmem_bytes();
	k->slab0 = ksm_slab_bytes();
	k->cow0 = kt_vmstat("cow_ksm");
	k->slab_peak = k->kmem_peak = LONG_MIN;
	k->t_th[0] = k->t_th[1] = -1;
	k->pass1_cpu = k->last_pass_cpu = -1;
	k->t0 = t_now();
}

static const double th_frac[2] = { 0.50, 0.95 };

static void track_sample(struct track *k)
{
	long scans, scanned, slab, km;
	int i;

	k->t = t_now() - k->t0;
	k->saved = saved_pages();
	if (k->saved > k->saved_max)
		k->saved_max = k->saved;
	scans = cnt("full_scans") - k->scans0;
	scanned = cnt("pages_scanned") - k->scanned0;
	k->cpu = ksmd_cpu() - k->cpu0;
	if (scans < 0)		/* run=2 elsewhere reset it */
		scans = 0;
	if (scans > k->scans) {	/* a pass ended since the last sample */
		if (k->scans == 0)
			k->pass1_cpu = k->cpu;
		else
			k->last_pass_cpu = (k->cpu - k->pass_cpu_start) /
					   (scans - k->scans);
		k->pass_cpu_start = k->cpu;
		k->pass_start_scanned = scanned;
	}
	k->scans = scans;
	k->scanned = scanned;
	for (i = 0; i < 2; i++) {
		double frac;

		if (k->t_th[i] >= 0 || k->possible <= 0 ||
		    k->saved < th_frac[i] * k->possible)
			continue;
		k->t_th[i] = k->t;
		k->cpu_th[i] = k->cpu;
		k->saved_th[i] = k->saved;
		/* passes done plus the part of the current one */
		frac = (double)(scanned - k->pass_start_scanned) / k->pages;
		k->scans_th[i] = scans + (frac > 1 ? 1 : frac);
	}
	if (k->n++ % 5 == 0) {	/* growth since run=1, at its peak */
		slab = ksm_slab_bytes() - k->slab0;
		km = kmem_bytes() - k->kmem0;
		if (k->slab0 >= 0 && slab > k->slab_peak)
			k->slab_peak = slab;
		if (k->kmem0 >= 0 && km > k->kmem_peak)
			k->kmem_peak = km;
	}
	printf("@@SAMPLE %s %d %.2f %ld %ld %.2f\n", wl, run_no, k->t, k->saved,
	       scans, k->cpu);
}

static void track_report(struct track *k)
{
	static const char *const tn[2] = { "50", "95" };
	char name[64];
	int i;

	metric("pages", k->pages);
	metric("possible_pages", k->possible);
	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "time_to_%s_s", tn[i]);
		if (k->t_th[i] >= 0)
			metric(name, k->t_th[i]);
		else
			metric_na(name);
		snprintf(name, sizeof(name), "scans_to_%s", tn[i]);
		if (k->t_th[i] >= 0)
			metric(name, k->scans_th[i]);
		else
			metric_na(name);
	}
	if (k->t_th[1] >= 0) {
		metric("cpu_to_95_s", k->cpu_th[1]);
		if (k->cpu_th[1] > 0)
			metric("saved_per_cpu_s", k->saved_th[1] / k->cpu_th[1]);
		else
			metric_na("saved_per_cpu_s");
	} else {
		metric_na("cpu_to_95_s");
		metric_na("saved_per_cpu_s");
	}
	metric("max_saved_pct", 100.0 * k->saved_max / k->possible);
	metric("run_s", k->t);
	metric("full_scans", k->scans);
	metric("ksmd_cpu_s", k->cpu);
	metric("pages_scanned", k->scanned);
	metric("hash_ns_per_page", k->hash_ns);
	if (k->scanned > 0) {
		metric("cpu_ns_per_scanned_page", k->cpu * 1e9 / k->scanned);
		metric("scan_cost_hashes", k->cpu * 1e9 / k->scanned /
		       k->hash_ns);
	} else {
		metric_na("cpu_ns_per_scanned_page");
		metric_na("scan_cost_hashes");
	}
	if (k->pass1_cpu >= 0)
		metric("cpu_first_pass_s", k->pass1_cpu);
	if (k->last_pass_cpu >= 0)
		metric("cpu_last_pass_s", k->last_pass_cpu);
	if (k->slab_peak != LONG_MIN)
		metric("meta_bytes_per_page", (double)k->slab_peak / k->pages);
	else
		metric_na("meta_bytes_per_page");
	if (k->kmem_peak != LONG_MIN)
		metric("kmem_bytes_per_page", (double)k->kmem_peak / k->pages);
	else
		metric_na("kmem_bytes_per_page");
	if (k->cow0 >= 0)
		metric("cow_ksm", kt_vmstat("cow_ksm") - k->cow0);
}

/*
 * Start ksmd and follow it until 95% of the possible saving is reached and
 * @extra more full scans went by (at least @min_scans in all), or @limit s.
 */
static void follow(struct track *k, int extra, int min_scans, double limit)
{
	ksm_must_set("run", 1);
	for (;;) {
		sleep_s(SAMPLE_MS / 1000.0);
		track_sample(k);
		if (k->t > limit)
			break;
		if (k->t_th[1] >= 0 && k->scans >= (long)k->scans_th[1] + extra &&
		    k->scans >= min_scans)
			break;
	}
	track_sample(k);
}

static int run_merge(enum layout l, int nproc, long mib, int min_scans,
		     double limit)
{
	long pages = mib * 256;
	struct track k;

	configure();
	start_workers(l, nproc, pages);
	track_begin(&k, possible_saving(l, nproc, pages), pages * nproc);
	follow(&k, 2, min_scans, limit);
	track_report(&k);
	reset();
	return KT_PASS;
}

/* ---- own COW workload ------------------------------------------------- */

static int run_cow(void)
{
	long pages = 65536;
	struct track k;
	time_t end;

	configure();
	start_workers(L_PAIRS, 1, pages);
	track_begin(&k, possible_saving(L_PAIRS, 1, pages), pages);
	follow(&k, 1, 0, 240);
	track_report(&k);
	ksm_must_set("run", 0);
	sleep_s(0.2);
	metric("merged_before_write", saved_pages());
	ctl->go_write = 1;
	end = time(NULL) + 120;
	while (ctl->go_write && time(NULL) < end)
		usleep(20000);
	if (ctl->go_write || ctl->write_s <= 0) {
		metric_na("cow_faults_per_s");
	} else {
		metric("cow_write_s", ctl->write_s);
		metric("cow_faults_per_s", pages / ctl->write_s);
	}
	reset();
	return KT_PASS;
}

/* ---- co-runner -------------------------------------------------------- */

static void corunner(int idx, int cpu)
{
	size_t len = 64 << 20, i;
	volatile uint64_t *p = (uint64_t *)kt_map(len / PAGE);
	size_t chunk = 1 << 20;

	if (cpu >= 0)
		pin(0, cpu);

	madvise((void *)p, len, MADV_NOHUGEPAGE);
	memset((void *)p, 1, len);
	__sync_fetch_and_add(&ctl->ready, 1);
	for (;;) {
		for (i = 0; i < len / 8; i += 8) {	/* one word per 64 B line */
			p[i] += 1;
			if (!(i % (chunk / 8)) && i)
				ctl->bytes[idx] += chunk;
		}
		ctl->bytes[idx] += chunk;
		if (ctl->stop || getppid() == 1)
			_exit(0);
	}
}

static long corun_bytes(int n)
{
	long sum = 0;
	int i;

	for (i = 0; i < n; i++)
		sum += ctl->bytes[i];
	return sum;
}

/* MiB/s swept by @n co-runners in @secs, sampling ksmd on @k if given. */
static double corun_phase(int n, double secs, struct track *k)
{
	double t = t_now(), t1;
	long b = corun_bytes(n);

	while (t_now() - t < secs) {
		sleep_s(0.5);
		if (k)
			track_sample(k);
	}
	t1 = t_now();
	return (corun_bytes(n) - b) / 1048576.0 / (t1 - t);
}

static int run_corun(int n)
{
	long pages = 32 * 256;
	double a1, b, a2, alone, cpu0;
	struct track k;
	int i;

	configure();
	start_workers(L_MIXED, 4, pages);
	ctl->ready = 0;
	for (i = 0; i < n; i++) {
		ctl->bytes[i] = 0;
		if (!kt_fork())	/* one: where bench is; more: one a CPU */
			corunner(i, n == 1 || ncpu < 2 ? -1 : i % ncpu);
	}
	while (ctl->ready < n)
		usleep(20000);
	sleep_s(1);
	a1 = corun_phase(n, 4, NULL);
	track_begin(&k, possible_saving(L_MIXED, 4, pages), pages * 4);
	cpu0 = ksmd_cpu();
	ksm_must_set("run", 1);
	b = corun_phase(n, 12, &k);
	ksm_must_set("run", 0);
	metric("ksmd_cpu_share_pct", 100 * (ksmd_cpu() - cpu0) / 12);
	a2 = corun_phase(n, 4, NULL);
	alone = (a1 + a2) / 2;
	metric("corun_alone_mib_s", alone);
	metric("corun_beside_ksmd_mib_s", b);
	metric("corun_slowdown_pct", 100 * (alone / b - 1));
	metric("possible_pages", k.possible);
	metric("saved_pct_during_corun", 100.0 * k.saved / k.possible);
	metric("corunners", n);
	reset();
	return KT_PASS;
}

/* ---- sparse: a huge mapping with little in it --------------------------- */

static void on_alarm(int sig)
{
	(void)sig;
}

/*
 * Run @what (MADV_UNMERGEABLE or a write of 2 to run) under a SIGALRM of
 * SPARSE_CAP s without SA_RESTART, so that a kernel that walks every
 * address of the hole gives up with EINTR instead of holding the run.
 */
static void timed_unmerge(const char *name, char *p, size_t len, int run2)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	char capped[64];
	double t;
	int ret;

	sigaction(SIGALRM, &sa, NULL);
	alarm(SPARSE_CAP);
	t = t_now();
	if (run2)
		ret = ksm_set("run", "2");
	else
		ret = madvise(p, len, MADV_UNMERGEABLE);
	t = t_now() - t;
	alarm(0);
	snprintf(capped, sizeof(capped), "%s_capped", name);
	metric(name, t);
	metric(capped, ret && errno == EINTR);
	if (ret && errno != EINTR)
		printf("# %s: %s\n", name, strerror(errno));
}

static int run_sparse(void)
{
	const size_t len = 1UL << 40, stride = len / 512;
	struct track k;
	long i, scans;
	double cpu;
	char *p;

	configure();
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		kt_die("mmap of 1 TiB");
	madvise(p, len, MADV_NOHUGEPAGE);
	for (i = 0; i < 512; i++)
		kt_fill(p + i * stride + (i % 7) * PAGE, PAGE,
			0x59a50000ULL + i / 2);
	if (madvise(p, len, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	yard_ns = hash_ns();
	track_begin(&k, 256, 512);
	follow(&k, 3, 0, 240);
	track_report(&k);
	/* ksmd's CPU per pass once all is merged, over 10 s of passes */
	cpu = ksmd_cpu();
	scans = cnt("full_scans");
	sleep_s(10);
	scans = cnt("full_scans") - scans;
	if (scans > 0)
		metric("cpu_per_pass_ms", (ksmd_cpu() - cpu) * 1e3 / scans);
	else
		metric_na("cpu_per_pass_ms");
	metric("passes_in_10s", scans);
	ksm_must_set("run", 0);
	timed_unmerge("unmerge_s", p, len, 0);

	if (madvise(p, len, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE) again");
	track_begin(&k, 256, 512);
	follow(&k, 0, 0, 240);
	metric("merged_again", saved_pages());
	timed_unmerge("run2_s", p, len, 1);
	munmap(p, len);
	reset();
	return KT_PASS;
}

/* ---- vmas: rmap walks under an anon_vma with 40,000 VMAs --------------- */

#define NVMA	20000
#define NWALK	64
#define IDLE_BITMAP "/sys/kernel/mm/page_idle/bitmap"

/* One rmap walk of the page at frame @pfn: mark it idle; seconds. */
static double idle_walk(int fd, uint64_t pfn)
{
	uint64_t bits = 1ULL << (pfn % 64);
	double t = t_now();

	if (pwrite(fd, &bits, sizeof(bits), pfn / 64 * sizeof(bits)) !=
	    sizeof(bits))
		return -1;
	return t_now() - t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run_vmas(void)
{
	double walk[NWALK], wmax = 0, t;
	uint64_t pfn[NWALK];
	struct track k;
	pid_t kid, writer;
	int fd, i, n = 0;
	char *p;

	fd = open(IDLE_BITMAP, O_RDWR);
	if (fd < 0)
		kt_skip("no page_idle in this kernel (CONFIG_IDLE_PAGE_TRACKING)");
	configure();
	p = kt_map(NVMA);
	madvise(p, (size_t)NVMA * PAGE, MADV_NOHUGEPAGE);
	for (i = 0; i < NVMA; i++)
		kt_fill(p + (size_t)i * PAGE, PAGE, 0x7e5a0000ULL + i % (NVMA / 2));
	if (madvise(p, (size_t)NVMA * PAGE, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	for (i = 1; i < NVMA; i += 2)
		if (mprotect(p + (size_t)i * PAGE, PAGE, PROT_READ))
			kt_die("mprotect");
	yard_ns = hash_ns();
	track_begin(&k, NVMA / 2, NVMA);
	follow(&k, 1, 0, 300);
	track_report(&k);
	ksm_must_set("run", 0);

	kid = kt_fork();
	if (!kid) {
		while (getppid() != 1)
			pause();
		_exit(0);
	}
	/* the writer: toggles the protection of the last page, forever */
	ctl->stop = 0;
	ctl->write_s = 0;
	writer = kt_fork();
	if (!writer) {
		char *last = p + (size_t)(NVMA - 2) * PAGE;

		while (!ctl->stop && getppid() != 1) {
			double w = t_now();

			mprotect(last, PAGE, PROT_READ);
			mprotect(last, PAGE, PROT_READ | PROT_WRITE);
			w = (t_now() - w) / 2;
			if (w > ctl->write_s)
				ctl->write_s = w;
			usleep(1000);
		}
		_exit(0);
	}
	for (i = 0; i < NVMA / 2 && n < NWALK; i += NVMA / 2 / NWALK) {
		pfn[n] = kt_pfn(p + (size_t)i * PAGE);
		if (!pfn[n])
			continue;
		t = idle_walk(fd, pfn[n]);
		if (t < 0) {
			printf("# page_idle write: %s\n", strerror(errno));
			break;
		}
		walk[n++] = t * 1e3;
		if (t * 1e3 > wmax)
			wmax = t * 1e3;
	}
	ctl->stop = 1;
	kt_join(writer);
	close(fd);
	if (n) {
		qsort(walk, n, sizeof(*walk), cmp_double);
		metric("walks", n);
		metric("walk_ms_median", walk[n / 2]);
		metric("walk_ms_max", wmax);
		metric("writer_ms_max", ctl->write_s * 1e3);
	} else {
		metric_na("walk_ms_median");
		metric_na("walk_ms_max");
		metric_na("writer_ms_max");
	}
	kill(kid, SIGKILL);
	kt_join(kid);
	munmap(p, (size_t)NVMA * PAGE);
	reset();
	return KT_PASS;
}

/* ---- the kernel's selftest ksm_tests ----------------------------------- */

/* Value after @key in @text ("Total time:  1.2 s"), or -1. */
static double after(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtod(p + strlen(key), NULL) : -1;
}

static int run_selftest(const char *const argv[], int cow, long possible,
			long pages)
{
	static char out[65536];
	size_t len = 0;
	struct track k;
	int fd[2], status, started = 0;
	struct pollfd pfd;
	pid_t pid;
	ssize_t n;
	double t0 = t_now();

	configure();
	yard_ns = hash_ns();
	if (pipe(fd))
		kt_die("pipe");
	pid = kt_fork();
	if (!pid) {
		dup2(fd[1], 1);
		dup2(fd[1], 2);
		close(fd[0]);
		if (!cow && ncpu > 1) {
			pin(0, 0);
			if (setpriority(PRIO_PROCESS, 0, 19))
				printf("# nice 19: %s\n", strerror(errno));
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd[1]);
	pfd.fd = fd[0];
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, SAMPLE_MS) > 0) {
			n = read(fd[0], out + len, sizeof(out) - 1 - len);
			if (n <= 0)
				break;
			len += n;
		}
		/* its clock starts when it switches ksmd on */
		if (!started && ksm_get("run") == 1) {
			track_begin(&k, possible, pages);
			started = 1;
		}
		/*
		 * Done with ksmd when it stops it; -P unmaps its memory
		 * right after its report: one last look before that.
		 */
		out[len] = 0;
		if (started == 1 && ksm_get("run") != 1)
			started = 2;
		if (started == 1)
			track_sample(&k);
		if (!cow && strstr(out, "Average speed:"))
			started = 2;
		if (t_now() - t0 > 600)
			break;
	}
	out[len] = 0;
	close(fd[0]);
	status = kt_join(pid);
	printf("%s", out);
	metric("selftest_exit", status);
	if (started)
		track_report(&k);
	if (!cow) {
		metric("selftest_time_s", after(out, "Total time:"));
		metric("selftest_mib_s", after(out, "Average speed:"));
	} else {
		const char *m = strstr(out, "Merged pages:");

		metric("cow_unmerged_mib_s", after(out, "Average speed:"));
		metric("cow_merged_mib_s", m ? after(m, "Average speed:") : -1);
	}
	reset();
	return status ? KT_FAIL : KT_PASS;
}

static int run_one(void)
{
	static const char *const argv_p[] = {
		"./ksm_tests", "-P", "-s", "256", "-p", "1000", NULL };
	static const char *const argv_c[] = { "./ksm_tests", "-C", NULL };

	if (!strcmp(wl, "hash"))
		return run_hash();
	if (!strcmp(wl, "ksm-P"))	/* 256 MiB of one content */
		return run_selftest(argv_p, 0, 65536 - 65536 / MPS, 65536);
	if (!strcmp(wl, "ksm-C"))
		return run_selftest(argv_c, 1, 2000, 4000);
	if (!strcmp(wl, "same"))
		return run_merge(L_SAME, 8, 32, 0, 240);
	if (!strcmp(wl, "mixed"))
		return run_merge(L_MIXED, 4, 64, 0, 240);
	if (!strcmp(wl, "churn"))
		return run_merge(L_CHURN, 4, 64, 0, 240);
	per_process = !strcmp(wl, "mixed-process");
	no_scrub = !strcmp(wl, "mixed-noscrub");
	if (per_process || no_scrub) {
		if (access(KSM_DIR "merge_domain", F_OK))
			kt_skip("a variant for our engine only");
		return run_merge(L_MIXED, 4, 64, 0, 240);
	}
	ctl->busy = !strncmp(wl, "busy", 4);
	if (!strcmp(wl, "busy"))
		return run_merge(L_MIXED, 4, 16, 0, 90);
	if (!strcmp(wl, "busy1"))
		return run_merge(L_PAIRS, 1, 64, 0, 90);
	if (!strcmp(wl, "unique"))
		return run_merge(L_UNIQUE, 2, 128, 5, 240);
	if (!strcmp(wl, "cow"))
		return run_cow();
	if (!strcmp(wl, "corun"))
		return run_corun(1);
	if (!strcmp(wl, "corun-full"))
		return run_corun(ncpu < 1 ? 1 : ncpu > 4 ? 4 : ncpu);
	if (!strcmp(wl, "sparse"))
		return run_sparse();
	if (!strcmp(wl, "vmas"))
		return run_vmas();
	if (!strcmp(wl, "growth-256"))
		return run_merge(L_MIXED, 4, 64, 0, 300);
	if (!strcmp(wl, "growth-1024"))
		return run_merge(L_MIXED, 4, 256, 0, 600);
	if (!strcmp(wl, "growth-2048"))
		return run_merge(L_MIXED, 4, 512, 0, 900);
	fprintf(stderr, "bench: unknown workload %s\n", wl);
	return KT_FAIL;
}

/* ksm.bench_runs=<first>:<count> from the kernel command line, if there. */
static void bench_runs_arg(int *first, int *count)
{
	char line[4096], *p;
	FILE *f = fopen("/proc/cmdline", "r");

	if (!f)
		return;
	if (fgets(line, sizeof(line), f)) {
		p = strstr(line, "ksm.bench_runs=");
		if (p && sscanf(p, "ksm.bench_runs=%d:%d", first, count) != 2)
			kt_skip("bad ksm.bench_runs= on the kernel command line");
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	int first, runs, ret = KT_PASS;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: bench WORKLOAD [RUNS]\n");
		return KT_FAIL;
	}
	wl = argv[1];
	runs = argc > 2 ? atoi(argv[2]) : 1;
	first = 1;
	bench_runs_arg(&first, &runs);
	ksm_begin();
	ksmd_pid = find_ksmd();
	if (!ksmd_pid)
		kt_skip("no ksmd thread");
	ctl = kt_shared(sizeof(*ctl));
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	place();
	for (run_no = first; run_no < first + runs; run_no++)
		if (run_one() != KT_PASS)
			ret = KT_FAIL;
	return ret;
}
