// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_fuzz [SECONDS] -- COMMAND...: KSM under a syscall fuzzer.
 *
 * COMMAND (fuzz.sh gives trinity, started through merge_exec, so that all
 * of its memory is mergeable and it runs without privileges) runs for
 * SECONDS (0 or none: ksm.fuzz= on the kernel command line) and is then
 * stopped with SIGINT, as Ctrl-C would; its output is passed on, a few
 * lines every ten seconds.  Meanwhile, with ksmd at sleep_millisecs=0 and
 * a high pages_to_scan:
 *   - a helper keeps HPAGES mergeable pages of contents trinity's memory
 *     has too (zero pages, constant bytes, a page with its first byte 1),
 *     contents of its own and unique ones, writes, verifies, pages out,
 *     toggles MADV_UNMERGEABLE and forks, every page with a shadow copy
 *     that is never mergeable;
 *   - a flipper takes ksmd from run=1 to 2 or 0 (and to the other one)
 *     and back to 1, after a few full scans each time, and samples the
 *     counters and the merged pages of COMMAND's processes;
 *   - a writer throws bad and extreme values (negative, 2^64 and beyond,
 *     non-numeric, empty, NUL bytes, 4 KiB and longer strings, at an
 *     offset, split in two writes) at every writable file of
 *     /sys/kernel/mm/ksm, expecting errors, and puts each tunable back to
 *     its value before the fuzz (run is the flipper's).
 * It passes when COMMAND ran the whole time and exited 0 within GRACE
 * seconds of SIGINT, with every process of FUZZ_UID gone; the helper's
 * pages equal their shadow, before and after run=2; run=2 brings every
 * counter to 0; every tunable is back; and a fresh process with
 * duplicate pages is merged, all of them, within FRESH_SCANS full scans.
 * The harness adds: no kernel splat.  One "figures:" line sums it up.
 * KSM_FUZZ_SEED in the environment seeds the helper, the flipper and the
 * writer (fuzz.sh gives them trinity's seed).
 */
#define _GNU_SOURCE
#include "ktest.h"
#include <ctype.h>
#include <dirent.h>
#include <poll.h>
#include <sys/stat.h>

#define PAGES_TO_SCAN	5000
#define HPAGES		2048	/* the helper's pages */
#define NCOMMON		8	/* contents of the helper's own, repeated */
#define MAXRUN		64
#define FRESH_PAGES	256	/* two contents, after the fuzz */
#define FRESH_SCANS	10
#define GRACE		300	/* seconds for COMMAND to exit after SIGINT */
#define FUZZ_UID	65534	/* fuzz.sh runs COMMAND as nobody */
#define MERGE_SCANS	2	/* full scans at run=1 before the next flip */
#define MAXKNOBS	64
#define SHOWN		20	/* lines of COMMAND shown every 10 s */
#define RING		40	/* its last lines, shown when it fails */

static struct figures {
	long stop;
	long writes, pokes, verifies, pageouts, toggles, forks;
	long mismatches;
	long runs[3], run_errors, run_fixes;
	long sysfs_writes, sysfs_accepted, restores, restore_errors;
	long accepted[MAXKNOBS];
	long peak_sharing, peak_fuzz_merging, peak_fuzz_items, peak_fuzz_procs;
	long full_scans, scans;
} *fig;

#define ADD(field, n)	__atomic_fetch_add(&fig->field, (n), __ATOMIC_RELAXED)
#define STOPPED()	__atomic_load_n(&fig->stop, __ATOMIC_RELAXED)

static size_t ps;

/* ---- the helper ------------------------------------------------------ */

static char *hmem, *hshadow;
static unsigned int hr;

static unsigned int rnd(unsigned int n)
{
	return rand_r(&hr) % n;
}

/*
 * A page of content.  trinity fills its mappings with zeros, a constant
 * byte, or a 1 at the start of every page (its dirty_mapping() helpers):
 * the helper's pages of those contents merge with trinity's.
 */
static void gen(char *page)
{
	static const unsigned char bytes[] = { 0xff, 0x01, 0x41, 0xaa };
	unsigned int k = rnd(20);

	if (k < 8) {
		kt_fill(page, ps, 0xf022000ULL + rnd(NCOMMON));
	} else if (k < 11) {
		memset(page, 0, ps);
	} else if (k < 14) {
		memset(page, bytes[rnd(sizeof(bytes))], ps);
	} else if (k < 16) {
		memset(page, 0, ps);
		page[0] = 1;
	} else {
		kt_fill(page, ps, ((uint64_t)rand_r(&hr) << 32) |
			rand_r(&hr) | 1);
	}
}

/* Pages [from, from + n) against the shadow; each bad one is reported. */
static int verify(size_t from, size_t n, const char *when)
{
	size_t i, off, diff;
	int bad = 0;

	ADD(verifies, 1);
	for (i = from; i < from + n; i++) {
		const char *m = hmem + i * ps, *s = hshadow + i * ps;

		if (!memcmp(m, s, ps))
			continue;
		off = kt_page_diff(m, s, &diff);
		kt_check(0, "mismatch (%s, pid %d): page %zu (address %p) "
			 "offset %zu: expected 0x%02x, actual 0x%02x; %zu "
			 "bytes of the page differ", when, getpid(), i, m, off,
			 (unsigned char)s[off], (unsigned char)m[off], diff);
		bad++;
	}
	if (bad)
		ADD(mismatches, bad);
	return bad;
}

static void pick(size_t *from, size_t *n, size_t max)
{
	*from = rnd(HPAGES);
	*n = 1 + rnd(max);
	if (*from + *n > HPAGES)
		*n = HPAGES - *from;
}

static void op_write(void)
{
	char page[4096];
	size_t from, n, i;

	pick(&from, &n, 8);
	verify(from, n, "before a write");
	for (i = from; i < from + n; i++) {
		if (rnd(4)) {
			gen(page);
			memcpy(hmem + i * ps, page, ps);
			memcpy(hshadow + i * ps, page, ps);
			ADD(writes, 1);
		} else {
			kt_poke(hmem, hshadow, i * ps + rnd(ps), (char)rnd(256));
			ADD(pokes, 1);
		}
	}
}

static void op_pageout(void)
{
	size_t from, n;

	pick(&from, &n, 4 * MAXRUN);
	madvise(hmem + from * ps, n * ps, MADV_PAGEOUT);
	ADD(pageouts, 1);
	if (!rnd(3))
		verify(from, n, "after MADV_PAGEOUT");
}

/* Unmerge a run (copy-on-write breaks), check it, make it mergeable again. */
static void op_toggle(void)
{
	size_t from, n;

	pick(&from, &n, MAXRUN);
	if (madvise(hmem + from * ps, n * ps, MADV_UNMERGEABLE))
		kt_note("madvise(MADV_UNMERGEABLE): %s (noted)",
			strerror(errno));
	verify(from, n, "after MADV_UNMERGEABLE");
	if (madvise(hmem + from * ps, n * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	ADD(toggles, 1);
}

/* A child checks its copy, writes to it, checks it again and exits. */
static void op_fork(void)
{
	pid_t pid = kt_fork();
	int i;

	if (pid) {
		ADD(forks, 1);
		if (kt_join(pid))
			kt_check(0, "the helper's forked child %d failed", pid);
		return;
	}
	kt_who = "helper's child: ";
	hr ^= getpid() * 2654435761U;
	verify(0, HPAGES, "the forked child's inherited copy");
	for (i = 0; i < 32; i++)
		op_write();
	verify(0, HPAGES, "the forked child's last check");
	kt_child_exit();
}

/*
 * Until the fuzz stops: random operations.  Then one answer (0) on ->up,
 * and for each 1 on ->down, a check of every page: its mismatches.
 */
static void helper(struct kt_proc *p, unsigned int seed)
{
	char page[4096];
	unsigned int k;
	size_t i, from, n;

	kt_who = "helper: ";
	hr = seed;
	hmem = kt_map(HPAGES);
	for (i = 0; i < HPAGES; i++) {
		gen(page);
		memcpy(hmem + i * ps, page, ps);
	}
	hshadow = kt_shadow(hmem, HPAGES);
	if (madvise(hmem, HPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	kt_put(p->up, 0);
	while (!STOPPED()) {
		k = rnd(100);
		if (k < 55) {
			op_write();
		} else if (k < 80) {
			pick(&from, &n, MAXRUN);
			verify(from, n, "a random check");
		} else if (k < 90) {
			op_pageout();
		} else if (k < 99) {
			op_toggle();
		} else {
			op_fork();
		}
		usleep(rnd(4000));
	}
	kt_put(p->up, 0);
	while (kt_get(p->down) == 1)
		kt_put(p->up, verify(0, HPAGES, "a check of every page"));
	kt_child_exit();
}

/* ---- processes of the fuzzer ---------------------------------------- */

static long proc_uid(pid_t pid)
{
	char path[64], line[256];
	long uid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %ld", &uid) == 1)
			break;
	if (f)
		fclose(f);
	return uid;
}

/* VMAs of @pid (in *@total) and how many are mergeable ("mg"). */
static int mergeable_vmas(pid_t pid, int *total)
{
	char path[64], line[512];
	int mg = 0;
	FILE *f;

	*total = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmFlags:", 8))
			continue;
		(*total)++;
		mg += !!strstr(line, " mg");
	}
	if (f)
		fclose(f);
	return mg;
}

/* One line on process @pid; counts it in *@mergeable if it has "mg" VMAs. */
static void fuzz_show(pid_t pid, long *mergeable)
{
	char path[64], comm[64] = "", stat[256] = "", *st;
	int mg, vmas;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	kt_read_str(path, comm, sizeof(comm));
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	kt_read_str(path, stat, sizeof(stat));
	st = strrchr(stat, ')');
	mg = mergeable_vmas(pid, &vmas);
	*mergeable += mg > 0;
	kt_note("  pid %d %s (%c): %d of %d VMAs mergeable, ksm_rmap_items "
		"%ld, ksm_merging_pages %ld", pid, comm, st && st[1] ? st[2] :
		'?', mg, vmas, kt_ksm_stat(pid, "ksm_rmap_items"),
		kt_merging_pages(pid));
}

/*
 * The processes of FUZZ_UID: how many; sends them @sig if not 0; adds up
 * their ksm_merging_pages in *@merging and ksm_rmap_items (the pages
 * ksmd keeps an item for) in *@items, and shows each one, counting those
 * with mergeable VMAs in *@mergeable, when given.
 */
static int fuzz_procs(int sig, long *merging, long *items, long *mergeable)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	long v;
	pid_t pid;

	while (d && (e = readdir(d))) {
		if (!isdigit(e->d_name[0]))
			continue;
		pid = atoi(e->d_name);
		if (proc_uid(pid) != FUZZ_UID)
			continue;
		n++;
		if (sig)
			kill(pid, sig);
		v = merging ? kt_merging_pages(pid) : 0;
		if (v > 0)
			*merging += v;
		v = items ? kt_ksm_stat(pid, "ksm_rmap_items") : 0;
		if (v > 0)
			*items += v;
		if (mergeable)
			fuzz_show(pid, mergeable);
	}
	if (d)
		closedir(d);
	return n;
}

/* Show the tasks in uninterruptible sleep, with their stacks. */
static void show_blocked(void)
{
	kt_write("/proc/sysrq-trigger", "w");
}

/* ---- the flipper ------------------------------------------------------ */

static void sample(void)
{
	long sharing = ksm_get("pages_sharing"), now = ksm_get("full_scans");

	if (sharing > fig->peak_sharing)
		fig->peak_sharing = sharing;
	fig->full_scans += now >= fig->scans ? now - fig->scans : now;
	fig->scans = now;
}

static void sample_fuzz(void)
{
	long merging = 0, items = 0;
	int n = fuzz_procs(0, &merging, &items, NULL);

	if (merging > fig->peak_fuzz_merging)
		fig->peak_fuzz_merging = merging;
	if (items > fig->peak_fuzz_items)
		fig->peak_fuzz_items = items;
	if (n > fig->peak_fuzz_procs)
		fig->peak_fuzz_procs = n;
}

static void set_run(int v)
{
	int err = ksm_set_long("run", v);

	ADD(runs[v], 1);
	if (err && !ADD(run_errors, 1))
		kt_note("run=%d: %s (noted, not a failure)", v, strerror(-err));
}

/* A random pause of 0.2 to 2 s. */
static void pause_a_while(unsigned int *r)
{
	usleep(200000 + rand_r(r) % 1800000);
}

/*
 * run=1 -> 2 or 0 (-> the other one) -> 1, once MERGE_SCANS full scans
 * were done at run=1 and 3 to 15 s passed; every 100 ms a sample, and
 * run=1 again if the writer's values changed it.
 */
static void flipper(unsigned int r)
{
	time_t now, next = time(NULL) + 5, sampled = 0;
	long scans = 0;
	int to;

	kt_who = "flipper: ";
	while (!STOPPED()) {
		sample();
		now = time(NULL);
		if (now >= sampled) {
			sample_fuzz();
			sampled = now + 2;
		}
		if (ksm_get("run") != 1) {
			ksm_set("run", "1");
			ADD(run_fixes, 1);
		}
		if (now >= next && fig->full_scans >= scans + MERGE_SCANS) {
			to = rand_r(&r) % 2 ? 2 : 0;
			set_run(to);
			pause_a_while(&r);
			if (!(rand_r(&r) % 3)) {
				set_run(2 - to);
				pause_a_while(&r);
			}
			set_run(1);
			sample();
			scans = fig->full_scans;
			next = time(NULL) + 3 + rand_r(&r) % 13;
		}
		usleep(100000);
	}
	sample();
	kt_child_exit();
}

/* ---- the sysfs writer -------------------------------------------------- */

static struct knob {
	char name[64];
	char path[sizeof(KSM_DIR) + 64];
	char sane[128];		/* as read before the fuzz */
} knobs[MAXKNOBS];
static int nknobs;

/* Every writable file of /sys/kernel/mm/ksm, with its value now. */
static void knobs_find(void)
{
	DIR *d = opendir(KSM_DIR);
	struct knob *k;
	struct dirent *e;
	struct stat st;
	size_t len;

	if (!d)
		kt_die(KSM_DIR);
	while ((e = readdir(d)) && nknobs < MAXKNOBS) {
		k = &knobs[nknobs];
		len = strlen(e->d_name);
		if (len >= sizeof(k->name))
			continue;
		memcpy(k->name, e->d_name, len + 1);
		memcpy(k->path, KSM_DIR, sizeof(KSM_DIR) - 1);
		memcpy(k->path + sizeof(KSM_DIR) - 1, e->d_name, len + 1);
		if (stat(k->path, &st) || !S_ISREG(st.st_mode) ||
		    !(st.st_mode & 0200))
			continue;
		kt_read_str(k->path, k->sane, sizeof(k->sane));
		nknobs++;
	}
	closedir(d);
}

/* What to write to get @shown back: the word in brackets, if any. */
static void knob_word(const char *shown, char *buf, size_t len)
{
	const char *a = strchr(shown, '['), *b = a ? strchr(a, ']') : NULL;

	if (a && b)
		snprintf(buf, len, "%.*s", (int)(b - a - 1), a + 1);
	else
		snprintf(buf, len, "%s", shown);
}

/*
 * Put tunable @i back to its value before the fuzz, unless it is run
 * (the flipper's); whether it is back.  Some refuse with EBUSY while
 * pages are merged (max_page_sharing, merge_across_nodes,
 * merge_domain): they come back after a run=2.
 */
static int knob_restore(int i, int say)
{
	char now[128], word[128];

	if (!strcmp(knobs[i].name, "run"))
		return 1;
	kt_read_str(knobs[i].path, now, sizeof(now));
	if (!strcmp(now, knobs[i].sane))
		return 1;
	knob_word(knobs[i].sane, word, sizeof(word));
	if (!kt_write(knobs[i].path, word)) {
		ADD(restores, 1);
		return 1;
	}
	ADD(restore_errors, 1);
	if (say)
		kt_note("%s is \"%s\", not \"%s\"", knobs[i].name, now,
			knobs[i].sane);
	return 0;
}

/*
 * Every tunable back, twice over (pages_to_scan refuses writes while
 * advisor_mode is scan-time); how many still differ, named if @say.
 */
static int knobs_restore(int say)
{
	int pass, i, left = 0;

	for (pass = 0; pass < 2; pass++) {
		left = 0;
		for (i = 0; i < nknobs; i++)
			left += !knob_restore(i, say && pass);
	}
	return left;
}

struct bad {
	const char *s;
	size_t len;
};

#define BAD(x)	{ x, sizeof(x) - 1 }

static const struct bad bad_values[] = {
	BAD("-1"), BAD("-0"), BAD("-2"), BAD("-4294967296"),
	BAD("-9223372036854775808"), BAD("-18446744073709551616"),
	BAD("18446744073709551616"),		/* 2^64 */
	BAD("18446744073709551617"), BAD("36893488147419103232"),
	BAD("18446744073709551615"), BAD("9223372036854775808"),
	BAD("9223372036854775807"), BAD("4294967296"), BAD("4294967295"),
	BAD("2147483648"), BAD("2147483647"), BAD("65536"),
	BAD("999999999999999999999999999999999999999999999999999999999"),
	BAD("0"), BAD("1"), BAD("2"), BAD("3"), BAD("00000000000000000001"),
	BAD(""), BAD("\n"), BAD(" "), BAD("\t\n"), BAD("\n1"), BAD("1\n\n"),
	BAD("0x10"), BAD("0x"), BAD("010"), BAD("08"), BAD("1e9"), BAD("1.5"),
	BAD("+1"), BAD("+"), BAD("-"), BAD(" 1"), BAD("1 "), BAD("1 2"),
	BAD("1,2"), BAD("abc"), BAD("y"), BAD("N"), BAD("on"), BAD("of"),
	BAD("true"), BAD("nan"), BAD("inf"), BAD("%s%s%n%n"),
	BAD("none"), BAD("scan-time"), BAD("[none]"), BAD("none scan-time"),
	BAD("scan-time\n\n"), BAD("scan"), BAD("global"), BAD("cgroup"),
	BAD("user"), BAD("process"), BAD("PROCESS"), BAD("proc"),
	BAD("global "), BAD("[global] cgroup user process"),
	BAD("1\0garbage"), BAD("\0"), BAD("\0001"), BAD("9\0"),
	BAD("\xff\xfe\xfd"), BAD("\x80"), BAD("1\x7f"),
};

static char long_digits[4095], long_ones[4096], long_as[9000];

static void bad_init(void)
{
	memset(long_digits, '9', sizeof(long_digits));
	memset(long_ones, '1', sizeof(long_ones));
	memset(long_as, 'a', sizeof(long_as));
}

/* A bad value for the writer: one of the list, a long one, or noise. */
static void bad_pick(unsigned int *r, char *noise, const char **s,
		     size_t *len)
{
	unsigned int k = rand_r(r) % 20, i;

	if (k < 16) {
		k = rand_r(r) % ARRAY_SIZE(bad_values);
		*s = bad_values[k].s;
		*len = bad_values[k].len;
	} else if (k == 16) {
		*s = long_digits;
		*len = sizeof(long_digits) - rand_r(r) % 2;
	} else if (k == 17) {
		*s = long_ones;
		*len = sizeof(long_ones) - rand_r(r) % 2;
	} else if (k == 18) {
		*s = long_as;
		*len = sizeof(long_as);
	} else {
		*len = 1 + rand_r(r) % 64;
		for (i = 0; i < *len; i++)
			noise[i] = rand_r(r);
		*s = noise;
	}
}

/*
 * Write @len bytes of @s to @path: in one write, at an offset, or split
 * in two writes on one open file.  Whether the kernel took all of it.
 */
static int write_raw(const char *path, const char *s, size_t len, int how)
{
	int fd = open(path, O_WRONLY), ok;
	size_t half = len / 2;

	if (fd < 0)
		return 0;
	if (how == 1)
		ok = pwrite(fd, s, len, 1 + len % 4096) == (ssize_t)len;
	else if (how == 2 && half)
		ok = write(fd, s, half) == (ssize_t)half &&
		     write(fd, s + half, len - half) == (ssize_t)(len - half);
	else
		ok = write(fd, s, len) == (ssize_t)len;
	close(fd);
	return ok;
}

/*
 * A bad value to a random file, a pause of up to 10 ms (an accepted
 * extreme value, such as sleep_millisecs=4294967295, takes effect), that
 * file put back; every 2 s, all of them.
 */
static void writer(unsigned int r)
{
	time_t all = 0;
	char noise[64];
	const char *s;
	size_t len;
	int k;

	kt_who = "writer: ";
	bad_init();
	while (!STOPPED()) {
		k = rand_r(&r) % nknobs;
		bad_pick(&r, noise, &s, &len);
		ADD(sysfs_writes, 1);
		if (write_raw(knobs[k].path, s, len, rand_r(&r) % 3)) {
			ADD(sysfs_accepted, 1);
			ADD(accepted[k], 1);
		}
		usleep(rand_r(&r) % 10000);
		knob_restore(k, 0);
		/* advisor_mode=none sets pages_to_scan to its default */
		if (!strcmp(knobs[k].name, "advisor_mode"))
			all = 0;
		if (time(NULL) >= all) {
			knobs_restore(0);
			all = time(NULL) + 2;
		}
	}
	knobs_restore(0);
	kt_child_exit();
}

/* ---- the fuzzer itself --------------------------------------------------- */

static struct relay {
	time_t start;
	int fd;
	char buf[8192];
	size_t len;
	time_t window;
	int shown;
	long hidden;
	char ring[RING][200];
	int pos;
	long ran, ok, failed;
} out;

static void relay_line(char *line)
{
	time_t now = time(NULL);
	char *p;

	if (!*line)
		return;
	p = strstr(line, "Ran ");
	if (p)
		sscanf(p, "Ran %ld syscalls", &out.ran);
	p = strstr(line, "Successes: ");
	if (p)
		sscanf(p, "Successes: %ld", &out.ok);
	p = strstr(line, "Failures: ");
	if (p)
		sscanf(p, "Failures: %ld", &out.failed);
	snprintf(out.ring[out.pos++ % RING], sizeof(out.ring[0]), "%s", line);
	if (now >= out.window) {
		if (out.hidden)
			printf("trinity: (%ld lines not shown)\n", out.hidden);
		out.window = now + 10;
		out.shown = 0;
		out.hidden = 0;
	}
	if (out.shown++ < SHOWN || strstr(line, "Ran ") ||
	    strstr(line, "taint") || strstr(line, "seed"))
		printf("trinity: [%lds] %s\n", (long)(now - out.start), line);
	else
		out.hidden++;
}

/* Pass on what COMMAND printed, waiting for it at most @ms. */
static void relay(int ms)
{
	struct pollfd pfd = { .fd = out.fd, .events = POLLIN };
	char *nl, *line;
	ssize_t n;

	if (out.fd < 0) {
		usleep(ms * 1000);
		return;
	}
	if (poll(&pfd, 1, ms) <= 0)
		return;
	for (;;) {
		n = read(out.fd, out.buf + out.len, sizeof(out.buf) - 1 -
			 out.len);
		if (!n) {		/* end of file: nobody holds it open */
			close(out.fd);
			out.fd = -1;
		}
		if (n <= 0)
			break;
		out.len += n;
		out.buf[out.len] = 0;
		line = out.buf;
		while ((nl = strpbrk(line, "\r\n"))) {
			*nl = 0;
			relay_line(line);
			line = nl + 1;
		}
		out.len -= line - out.buf;
		memmove(out.buf, line, out.len);
		if (out.len == sizeof(out.buf) - 1) {
			out.buf[out.len] = 0;
			relay_line(out.buf);
			out.len = 0;
		}
	}
}

static void show_ring(void)
{
	int i;

	kt_note("the last lines of trinity's output:");
	for (i = 0; i < RING; i++)
		if (out.ring[(out.pos + i) % RING][0])
			printf("trinity| %s\n", out.ring[(out.pos + i) % RING]);
}

static pid_t spawn(char **argv)
{
	int fds[2], fd;
	pid_t pid;

	if (pipe(fds))
		kt_die("pipe");
	pid = kt_fork();
	if (!pid) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		for (fd = 3; fd < 1024; fd++)
			close(fd);
		execvp(argv[0], argv);
		kt_die(argv[0]);
	}
	close(fds[1]);
	out.start = time(NULL);
	out.fd = fds[0];
	fcntl(out.fd, F_SETFL, O_NONBLOCK);
	return pid;
}

/* Whether @pid exited; its wait status in *@status. */
static int exited(pid_t pid, int *status)
{
	if (waitpid(pid, status, WNOHANG) != pid)
		return 0;
	kt_forget(pid);
	return 1;
}

/*
 * COMMAND has exec'd (its name is neither ours nor merge_exec's): its mm
 * must have kept MMF_VM_MERGE_ANY, so that the VMAs exec made for it are
 * mergeable ("mg" in VmFlags; 6.12's ksm_stat does not show the flag).
 */
static void check_merge_any(pid_t pid)
{
	char path[64], comm[64] = "";
	int i, mg, vmas;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	for (i = 0; i < 300; i++) {
		if (kt_read_str(path, comm, sizeof(comm)) ||
		    (strcmp(comm, "ksm_fuzz") && strcmp(comm, "merge_exec")))
			break;
		usleep(100000);
	}
	mg = mergeable_vmas(pid, &vmas);
	kt_check(mg > 0, "PR_SET_MEMORY_MERGE survived exec: %d of the %d "
		 "VMAs of %s (pid %d) are mergeable", mg, vmas, comm, pid);
}

/*
 * Run COMMAND for @seconds, then SIGINT to its process group; it must
 * exit 0 within GRACE seconds, and every process of FUZZ_UID must go.
 */
static void fuzz(char **argv, int seconds)
{
	time_t end, half, deadline;
	long merging = 0, items = 0, mergeable = 0;
	int status = 0, done = 0, n = 0, i;
	pid_t pid;

	pid = spawn(argv);
	end = time(NULL) + seconds;
	half = time(NULL) + seconds / 2;
	check_merge_any(pid);
	while (!done && time(NULL) < end) {
		relay(500);
		done = exited(pid, &status);
		if (half && time(NULL) >= half) {
			kt_note("halfway, the processes of uid %d:", FUZZ_UID);
			n = fuzz_procs(0, &merging, &items, &mergeable);
			kt_note("halfway: %d processes, %ld of them with "
				"mergeable VMAs; ksmd has items for %ld of "
				"their pages, %ld merged", n, mergeable, items,
				merging);
			half = 0;
		}
	}
	if (done) {
		kt_check(0, "%s exited after %ld s of %d, wait status 0x%x",
			 argv[0], (long)(time(NULL) - end + seconds), seconds,
			 status);
		show_ring();
	} else {
		kt_note("%d s passed: SIGINT to %s", seconds, argv[0]);
		kill(-pid, SIGINT);
		deadline = time(NULL) + GRACE;
		while (!done && time(NULL) < deadline) {
			relay(500);
			done = exited(pid, &status);
		}
		kt_check(done, "%s exited within %d s of SIGINT", argv[0],
			 GRACE);
		if (done)
			kt_check(WIFEXITED(status) && !WEXITSTATUS(status),
				 "%s exited with 0 (wait status 0x%x)",
				 argv[0], status);
		else
			show_blocked();
		if (!done || status)
			show_ring();
	}
	for (i = 0; i < 120; i++) {
		kill(-pid, SIGKILL);
		n = fuzz_procs(SIGKILL, NULL, NULL, NULL);
		if (!done)
			done = exited(pid, &status);
		if (!n && done)
			break;
		relay(1000);
	}
	kt_check(!n && done, "every process of uid %d is gone (%d left)",
		 FUZZ_UID, n);
	if (n || !done)
		show_blocked();
	relay(0);
	if (out.hidden)
		printf("trinity: (%ld lines not shown)\n", out.hidden);
	if (out.fd >= 0)
		close(out.fd);
	out.fd = -1;
}

/* ---- after the fuzz ---------------------------------------------------- */

/*
 * ksmd still merges: a fresh process with FRESH_PAGES pages of two
 * contents has all of them merged (pages_shared 2) within FRESH_SCANS
 * full scans, and they kept their content.
 */
static void fresh_check(void)
{
	struct kt_proc kid;
	char *m, page[4096];
	size_t i;
	int bad = 0, ok;

	if (!kt_spawn(&kid)) {
		kt_who = "fresh process: ";
		m = kt_map(FRESH_PAGES);
		for (i = 0; i < FRESH_PAGES; i++)
			kt_fill(m + i * ps, ps, 0xf4e5400ULL + i % 2);
		if (madvise(m, FRESH_PAGES * ps, MADV_MERGEABLE))
			kt_die("madvise(MADV_MERGEABLE)");
		kt_put(kid.up, 0);
		kt_get(kid.down);
		for (i = 0; i < FRESH_PAGES; i++) {
			kt_fill(page, ps, 0xf4e5400ULL + i % 2);
			bad += !!memcmp(m + i * ps, page, ps);
		}
		kt_put(kid.up, bad);
		kt_child_exit();
	}
	if (kt_get(kid.up) != 0)
		kt_die("fresh process setup");
	ksm_must_set("run", 1);
	ok = !ksm_wait_counts(2, FRESH_PAGES - 2, 0, FRESH_SCANS, 900);
	ksm_print("fresh process");
	kt_check(ok, "ksmd still merges: a fresh process's %d duplicate "
		 "pages are merged within %d full scans (pages_shared 2, "
		 "pages_sharing %d; its ksm_merging_pages %ld)", FRESH_PAGES,
		 FRESH_SCANS, FRESH_PAGES - 2, kt_merging_pages(kid.pid));
	kt_check(kt_ask(&kid, 1) == 0, "the fresh process's pages kept "
		 "their content");
	kt_check(kt_finish(&kid) == 0, "the fresh process exited");
}

/* How many of the writer's values each file took. */
static void print_accepted(void)
{
	int i;

	printf("# values accepted:");
	for (i = 0; i < nknobs; i++)
		if (fig->accepted[i])
			printf(" %s %ld", knobs[i].name, fig->accepted[i]);
	printf("\n");
}

/* Processes created since boot (/proc/stat). */
static long forks(void)
{
	char line[256];
	long n = -1;
	FILE *f = fopen("/proc/stat", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "processes %ld", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	int seconds = kt_seconds(argc, argv, "ksm.fuzz=", 120), i, left;
	unsigned int seed = time(NULL) ^ getpid() << 16;
	long cow = kt_vmstat("cow_ksm"), forked = forks();
	struct kt_proc help;
	char **cmd = NULL;
	pid_t flip, wr;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--") && i + 1 < argc)
			cmd = argv + i + 1;
	if (getenv("KSM_FUZZ_SEED"))
		seed = strtoul(getenv("KSM_FUZZ_SEED"), NULL, 10);
	if (!cmd) {
		printf("usage: ksm_fuzz [SECONDS] -- COMMAND...\n");
		return KT_FAIL;
	}
	ksm_begin();
	ps = kt_ps();
	if (ps != 4096)
		kt_skip("pages are not 4 KiB");
	kt_write("/proc/self/oom_score_adj", "-1000");
	fig = kt_shared(sizeof(*fig));
	out.fd = -1;
	ksm_go(PAGES_TO_SCAN, 0);
	fig->scans = ksm_get("full_scans");
	knobs_find();
	kt_note("%d s of %s; helper %d pages; %d writable files in %s; "
		"seed %u", seconds, cmd[0], HPAGES, nknobs, KSM_DIR, seed);

	if (!kt_spawn(&help))
		helper(&help, seed);
	if (kt_get(help.up) != 0)
		kt_die("helper setup");
	flip = kt_fork();
	if (!flip)
		flipper(seed * 3);
	wr = kt_fork();
	if (!wr)
		writer(seed * 7);

	fuzz(cmd, seconds);
	forked = forks() - forked;

	__atomic_store_n(&fig->stop, 1, __ATOMIC_RELAXED);
	kt_check(kt_join(flip) == 0, "the run flipper ran to the end");
	kt_check(kt_join(wr) == 0, "the sysfs writer ran to the end");
	kt_check(kt_get(help.up) == 0, "the helper ran to the end");
	ksm_must_set("run", 1);
	knobs_restore(0);
	ksm_wait_scans(MERGE_SCANS, 600);
	ksm_print("after the fuzz");
	kt_check(kt_ask(&help, 1) == 0, "the helper's %d pages equal their "
		 "shadow after the fuzz", HPAGES);
	if (ksm_set("run", "2"))
		kt_check(0, "run=2 refused");
	ksm_check_zero("run=2 after the fuzz, the helper still mapping its "
		       "pages");
	kt_check(kt_ask(&help, 1) == 0, "the helper's pages equal their "
		 "shadow after run=2");
	kt_check(kt_finish(&help) == 0, "the helper passed its checks");
	left = knobs_restore(1);
	kt_check(!left, "every tunable is back to its value before the fuzz");

	fresh_check();
	if (ksm_set("run", "2"))
		kt_check(0, "run=2 refused");
	ksm_check_zero("run=2 after the fresh process");

	print_accepted();
	printf("figures: %d s; trinity %ld syscalls (%ld succeeded, %ld "
	       "failed), %ld processes forked, peak %ld at once, peak %ld of "
	       "their pages known to ksmd and %ld merged; helper %ld writes, "
	       "%ld pokes, %ld checks, %ld pageouts, %ld unmerge toggles, "
	       "%ld forks, %ld mismatches; run=1 %ld, run=2 %ld, run=0 %ld "
	       "(%ld refused); sysfs %ld bad writes, %ld accepted, %ld "
	       "restores; peak pages_sharing %ld, full scans %ld, cow_ksm "
	       "%ld\n", seconds, out.ran, out.ok, out.failed, forked,
	       fig->peak_fuzz_procs, fig->peak_fuzz_items,
	       fig->peak_fuzz_merging, fig->writes, fig->pokes, fig->verifies,
	       fig->pageouts, fig->toggles, fig->forks, fig->mismatches,
	       fig->runs[1], fig->runs[2], fig->runs[0], fig->run_errors,
	       fig->sysfs_writes, fig->sysfs_accepted, fig->restores,
	       fig->peak_sharing, fig->full_scans,
	       kt_vmstat("cow_ksm") - cow);
	kt_check(fig->mismatches == 0, "no page ever differed from its shadow");
	/*
	 * trinity's children live a few system calls each, and at most a
	 * handful of their pages are merged at a time; in a two-minute run
	 * there may be none, while the helper's pages carry the merging (the
	 * fresh process's check above shows ksmd merges).  A run of ten
	 * minutes or more must show them.
	 */
	if (seconds >= 600)
		kt_check(fig->peak_fuzz_merging > 0,
			 "trinity's own memory was merged");
	else
		kt_note("trinity's own pages merged: peak %ld",
			fig->peak_fuzz_merging);
	return kt_exit();
}
