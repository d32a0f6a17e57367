// SPDX-License-Identifier: GPL-2.0
/*
 * Every file of /sys/kernel/mm/ksm/ as the 6.12 ABI has it: exactly the
 * expected files, with their modes and boot-time defaults; good values
 * are taken and read back; bad values (non-numeric, negative, out of
 * range) fail with the errno 6.12 gives and change nothing; values refused
 * in the current state (max_page_sharing and merge_across_nodes while KSM
 * pages exist: EBUSY; pages_to_scan while the advisor runs: EINVAL) change
 * nothing; run starts and stops ksmd; counters are read-only even for
 * root; a non-root user can read every file and write none (EACCES).
 * Run it on a freshly booted guest (the defaults).
 */
#include <dirent.h>
#include <sys/stat.h>
#include "ktest.h"

#define NBAD 10

struct knob {
	const char *name;
	const char *dflt;	/* NULL: a counter, read-only */
	const char *good[4];
	struct { const char *val; int err; } bad[NBAD];
};

#define BIG	"99999999999999999999999"	/* overflows every type */

static const struct knob knobs[] = {
	{ "run", "0", { "0\n" },
	  { { "3", EINVAL }, { "-1", EINVAL }, { "abc", EINVAL },
	    { " ", EINVAL }, { "1x", EINVAL }, { "4294967297", EINVAL },
	    { BIG, EINVAL } } },
	{ "pages_to_scan", "100", { "1000", "0", "200\n", "100" },
	  { { "-1", EINVAL }, { "abc", EINVAL }, { "4294967296", EINVAL },
	    { "1.5", EINVAL }, { BIG, EINVAL } } },
	{ "sleep_millisecs", "20", { "0", "1000\n", "20" },
	  { { "-1", EINVAL }, { "x20", EINVAL }, { "4294967296", EINVAL },
	    { BIG, EINVAL } } },
	{ "merge_across_nodes", "1", { "1\n" },
	  { { "2", EINVAL }, { "-1", EINVAL }, { "abc", EINVAL },
	    { BIG, ERANGE } } },
	{ "use_zero_pages", "0", { "1", "0\n" },
	  { { "2", EINVAL }, { "-1", EINVAL }, { "abc", EINVAL } } },
	{ "max_page_sharing", "256", { "2", "1024\n", "256" },
	  { { "1", EINVAL }, { "0", EINVAL }, { "-5", EINVAL },
	    { "abc", EINVAL }, { "2147483648", ERANGE }, { BIG, ERANGE } } },
	{ "stable_node_chains_prune_millisecs", "2000", { "500", "2000\n" },
	  { { "-1", EINVAL }, { "abc", EINVAL }, { "4294967296", EINVAL } } },
	{ "smart_scan", "1", { "0", "1\n" },
	  { { "2", EINVAL }, { "-1", EINVAL }, { "abc", EINVAL } } },
	{ "advisor_max_cpu", "70", { "50", "70\n" },
	  { { "-1", EINVAL }, { "abc", EINVAL }, { BIG, EINVAL } } },
	{ "advisor_min_pages_to_scan", "500", { "600", "500\n" },
	  { { "-1", EINVAL }, { "abc", EINVAL }, { BIG, EINVAL } } },
	{ "advisor_max_pages_to_scan", "30000", { "20000", "30000\n" },
	  { { "-1", EINVAL }, { "abc", EINVAL }, { BIG, EINVAL } } },
	{ "advisor_target_scan_time", "200", { "1", "200\n" },
	  { { "0", EINVAL }, { "-1", EINVAL }, { "abc", EINVAL },
	    { BIG, EINVAL } } },
	{ "pages_shared" }, { "pages_sharing" }, { "pages_unshared" },
	{ "pages_volatile" }, { "pages_scanned" }, { "pages_skipped" },
	{ "full_scans" }, { "stable_node_chains" }, { "stable_node_dups" },
	{ "ksm_zero_pages" }, { "general_profit" },
	/* ours, beyond 6.12 (besides merge_domain) */
	{ "scrub_pages_per_batch", "2", { "0", "100\n", "2" },
	  { { "-1", EINVAL }, { "abc", EINVAL }, { "4294967296", EINVAL },
	    { BIG, EINVAL } } },
	{ "zero_pages_across_domains", "0", { "1", "0\n" },
	  { { "2", EINVAL }, { "-1", EINVAL }, { "abc", EINVAL } } },
	{ "pages_scrubbed" }, { "scrub_failures" },
};
#define NKNOBS ARRAY_SIZE(knobs)
#define NOURS	4	/* the last ones of knobs[] */

static int numa_kernel(void)
{
	return !access("/sys/devices/system/node", F_OK);
}

static void knob_path(char *path, size_t len, const char *name)
{
	snprintf(path, len, KSM_DIR "%s", name);
}

/* The directory holds exactly our files and advisor_mode. */
static void check_listing(void)
{
	struct dirent *d;
	size_t i;
	int extra = 0, seen = 0;
	DIR *dir = opendir(KSM_DIR);

	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		for (i = 0; i < NKNOBS; i++)
			if (!strcmp(d->d_name, knobs[i].name))
				break;
		if (i < NKNOBS || !strcmp(d->d_name, "advisor_mode") ||
		    !strcmp(d->d_name, "merge_domain")) {
			seen++;
			continue;
		}
		kt_check(0, "unexpected file %s", d->d_name);
		extra++;
	}
	if (dir)
		closedir(dir);
	kt_check(!extra && seen == (int)NKNOBS + 2 - !numa_kernel(),
		 "the directory has exactly the %zu files of 6.12 and our %d "
		 "(%d found)", NKNOBS + 1 - NOURS - !numa_kernel(), NOURS + 1,
		 seen);
}

static void check_counter(const struct knob *k, const char *path)
{
	char now[64], after[64];

	kt_check(ksm_get_str(k->name, now, sizeof(now)) == 0 &&
		 (now[0] == '-' || (now[0] >= '0' && now[0] <= '9')),
		 "%s reads as a number (%s)", k->name, now);
	kt_check(kt_write(path, "0") == -EACCES && kt_write(path, now) == -EACCES,
		 "%s refuses writes with EACCES, even from root", k->name);
	ksm_get_str(k->name, after, sizeof(after));
	kt_check(!strcmp(now, after) || strcmp(k->name, "general_profit") == 0 ||
		 strcmp(k->name, "pages_scanned") == 0,
		 "%s is unchanged (%s)", k->name, after);
}

static void check_bad(const struct knob *k, const char *path, int i)
{
	char before[64], after[64];
	int r;

	ksm_get_str(k->name, before, sizeof(before));
	r = kt_write(path, k->bad[i].val);
	ksm_get_str(k->name, after, sizeof(after));
	kt_check(r == -k->bad[i].err && !strcmp(before, after),
		 "%s refuses '%s' with %s (got %s), value stays %s", k->name,
		 k->bad[i].val, strerror(k->bad[i].err),
		 r ? strerror(-r) : "success", after);
}

static void check_knob(const struct knob *k)
{
	char path[128], now[64], want[64];
	struct stat st;
	int i, r;

	knob_path(path, sizeof(path), k->name);
	if (stat(path, &st)) {
		if (!strcmp(k->name, "merge_across_nodes") && !numa_kernel())
			return;	/* only on NUMA kernels */
		kt_check(0, "%s exists", k->name);
		return;
	}
	kt_check((st.st_mode & 0777) == (k->dflt ? 0644 : 0444),
		 "%s has mode %o", k->name, st.st_mode & 0777);
	if (!k->dflt) {
		check_counter(k, path);
		return;
	}
	ksm_get_str(k->name, now, sizeof(now));
	kt_check(!strcmp(now, k->dflt), "%s defaults to %s (reads %s)",
		 k->name, k->dflt, now);
	for (i = 0; i < 4 && k->good[i]; i++) {
		r = kt_write(path, k->good[i]);
		ksm_get_str(k->name, now, sizeof(now));
		snprintf(want, sizeof(want), "%s", k->good[i]);
		want[strcspn(want, "\n")] = 0;
		kt_check(r == 0 && !strcmp(now, want),
			 "%s takes '%s' (write %d, reads %s)", k->name, want,
			 r, now);
	}
	for (i = 0; i < NBAD && k->bad[i].val; i++)
		check_bad(k, path, i);
	ksm_set(k->name, k->dflt);
}

static void check_advisor_mode(void)
{
	char now[64];
	struct stat st;

	kt_check(!stat(KSM_DIR "advisor_mode", &st) &&
		 (st.st_mode & 0777) == 0644, "advisor_mode has mode 644");
	ksm_get_str("advisor_mode", now, sizeof(now));
	kt_check(!strcmp(now, "[none] scan-time"),
		 "advisor_mode defaults to '[none] scan-time' (%s)", now);
	kt_check(ksm_set("advisor_mode", "bogus") == -EINVAL &&
		 ksm_set("advisor_mode", "scan-time-x") == -EINVAL,
		 "advisor_mode refuses 'bogus' and 'scan-time-x' with EINVAL");
	ksm_get_str("advisor_mode", now, sizeof(now));
	kt_check(!strcmp(now, "[none] scan-time"), "and stays none (%s)", now);
	kt_check(ksm_set("advisor_mode", "scan-time\n") == 0,
		 "advisor_mode takes scan-time");
	ksm_get_str("advisor_mode", now, sizeof(now));
	kt_check(!strcmp(now, "none [scan-time]"), "advisor_mode reads %s", now);
	kt_check(ksm_set("pages_to_scan", "1234") == -EINVAL &&
		 ksm_get("pages_to_scan") == 500,
		 "pages_to_scan refuses writes with EINVAL while the advisor "
		 "runs, and stays at advisor_min_pages_to_scan (%ld)",
		 ksm_get("pages_to_scan"));
	kt_check(ksm_set("advisor_mode", "none") == 0,
		 "advisor_mode takes none");
	ksm_get_str("advisor_mode", now, sizeof(now));
	kt_check(!strcmp(now, "[none] scan-time") &&
		 ksm_get("pages_to_scan") == 100,
		 "advisor_mode reads %s, pages_to_scan is 100 again", now);
}

static void check_merge_domain(void)
{
	static const char *const policies[] = {
		"global", "cgroup", "user", "process",
	};
	char now[64], want[64];
	struct stat st;
	size_t i, j;
	int n;

	kt_check(!stat(KSM_DIR "merge_domain", &st) &&
		 (st.st_mode & 0777) == 0644, "merge_domain has mode 644");
	ksm_get_str("merge_domain", now, sizeof(now));
	kt_check(!strcmp(now, "[global] cgroup user process"),
		 "merge_domain defaults to global (%s)", now);
	kt_check(ksm_set("merge_domain", "bogus") == -EINVAL &&
		 ksm_set("merge_domain", "globalx") == -EINVAL &&
		 ksm_set("merge_domain", "\n") == -EINVAL,
		 "merge_domain refuses 'bogus', 'globalx' and an empty line "
		 "with EINVAL");
	for (i = ARRAY_SIZE(policies); i-- > 0;) {
		for (j = 0, n = 0; j < ARRAY_SIZE(policies); j++)
			n += snprintf(want + n, sizeof(want) - n,
				      j == i ? "%s[%s]" : "%s%s", j ? " " : "",
				      policies[j]);
		ksm_set("merge_domain", policies[i]);
		ksm_get_str("merge_domain", now, sizeof(now));
		kt_check(!strcmp(now, want), "merge_domain takes %s (%s)",
			 policies[i], now);
	}
}

/* A non-root process can read every file and write none. */
static void nonroot_one(const char *name, const char *val)
{
	char path[128], buf[64];
	int r;

	knob_path(path, sizeof(path), name);
	if (access(path, F_OK))
		return;
	r = kt_write(path, val);
	kt_check(kt_read_str(path, buf, sizeof(buf)) == 0 && r == -EACCES,
		 "as uid 65534, %s can be read and writing it fails with "
		 "EACCES (got %s)", name, r ? strerror(-r) : "success");
}

static void check_nonroot(void)
{
	pid_t pid = kt_fork();
	size_t i;

	if (!pid) {
		if (setgid(65534) || setuid(65534))
			kt_die("setuid(65534)");
		kt_who = "nobody: ";
		for (i = 0; i < NKNOBS; i++)
			nonroot_one(knobs[i].name,
				    knobs[i].dflt ? knobs[i].dflt : "0");
		nonroot_one("advisor_mode", "none");
		nonroot_one("merge_domain", "process");
		nonroot_one("run", "1");
		kt_child_exit();
	}
	kt_check(kt_join(pid) == 0,
		 "a non-root user reads every file and writes none");
	kt_check(ksm_get("run") == 0, "run is still 0");
}

/* A process with 16 identical mergeable pages; the parent gets its pid. */
static pid_t merge_some(void)
{
	pid_t pid = kt_fork();
	char *p;

	if (pid)
		return pid;
	p = kt_map(16);
	memset(p, 0x33, 16 * kt_ps());
	madvise(p, 16 * kt_ps(), MADV_MERGEABLE);
	for (;;)
		pause();
}

/* run starts and stops ksmd; knobs refused while KSM pages exist. */
static void check_busy(void)
{
	pid_t pid = merge_some();
	long scans;

	ksm_must_set("sleep_millisecs", 10);
	kt_check(ksm_set("run", "1") == 0 && ksm_get("run") == 1, "run takes 1");
	ksm_expect("ksmd runs: 16 identical pages merged", 1, 15, 0);
	kt_check(ksm_set("max_page_sharing", "100") == -EBUSY &&
		 ksm_get("max_page_sharing") == 256,
		 "max_page_sharing refuses 100 with EBUSY while KSM pages exist");
	kt_check(ksm_set("max_page_sharing", "256") == 0,
		 "max_page_sharing takes its current value while KSM pages exist");
	if (numa_kernel()) {
		kt_check(ksm_set("merge_across_nodes", "0") == -EBUSY &&
			 ksm_get("merge_across_nodes") == 1,
			 "merge_across_nodes refuses 0 with EBUSY while KSM "
			 "pages exist");
		kt_check(ksm_set("merge_across_nodes", "1") == 0,
			 "merge_across_nodes takes its current value");
	}
	kt_check(ksm_set("merge_domain", "process") == -EBUSY &&
		 ksm_set("merge_domain", "global\n") == 0,
		 "merge_domain refuses a change with EBUSY while KSM pages "
		 "exist, and takes its current value");
	kt_check(ksm_set("run", "0") == 0 && ksm_get("run") == 0, "run takes 0");
	scans = ksm_get("full_scans");
	usleep(500000);
	kt_check(ksm_get("full_scans") == scans && ksm_get("pages_shared") == 1,
		 "with run=0 ksmd stops, and the pages stay merged");
	kt_check(ksm_set("run", "2") == 0 && ksm_get("run") == 2 &&
		 ksm_all_zero(), "run takes 2: every counter is 0");
	kt_check(ksm_set("max_page_sharing", "100") == 0 &&
		 ksm_get("max_page_sharing") == 100,
		 "with nothing merged, max_page_sharing takes 100");
	if (numa_kernel())
		kt_check(ksm_set("merge_across_nodes", "0") == 0 &&
			 ksm_get("merge_across_nodes") == 0,
			 "with nothing merged, merge_across_nodes takes 0");
	kill(pid, SIGKILL);
	kt_join(pid);
}

int main(void)
{
	size_t i;

	ksm_begin();
	check_listing();
	for (i = 0; i < NKNOBS; i++)
		check_knob(&knobs[i]);
	check_advisor_mode();
	check_merge_domain();
	check_nonroot();
	check_busy();
	return kt_exit();
}
