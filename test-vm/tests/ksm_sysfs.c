// SPDX-License-Identifier: GPL-2.0
/*
 * Every file of /sys/kernel/mm/ksm/ as the 6.12 ABI has it: present, with
 * its mode and boot-time default; good values are taken and read back;
 * bad values fail with the errno 6.12 gives and change nothing; a non-root
 * writer is refused.  Run it on a freshly booted guest (the defaults).
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include "ktest.h"

struct knob {
	const char *name;
	const char *dflt;	/* NULL: a counter, read-only */
	const char *good[3];
	struct { const char *val; int err; } bad[6];
};

static const struct knob knobs[] = {
	{ "run", "0", { "0" },
	  { { "3", EINVAL }, { "-1", EINVAL }, { "abc", EINVAL }, { " ", EINVAL } } },
	{ "pages_to_scan", "100", { "1000", "0", "100" },
	  { { "-1", EINVAL }, { "abc", EINVAL }, { "4294967296", EINVAL } } },
	{ "sleep_millisecs", "20", { "0", "1000", "20" },
	  { { "-1", EINVAL }, { "x20", EINVAL }, { "99999999999", EINVAL } } },
	{ "merge_across_nodes", "1", { "1" },
	  { { "2", EINVAL }, { "-1", EINVAL }, { "abc", EINVAL } } },
	{ "use_zero_pages", "0", { "1", "0" },
	  { { "2", EINVAL }, { "abc", EINVAL } } },
	{ "max_page_sharing", "256", { "256" },
	  { { "1", EINVAL }, { "-5", EINVAL }, { "abc", EINVAL },
	    { "99999999999", ERANGE } } },
	{ "stable_node_chains_prune_millisecs", "2000", { "500", "2000" },
	  { { "-1", EINVAL }, { "abc", EINVAL } } },
	{ "smart_scan", "1", { "0", "1" },
	  { { "2", EINVAL }, { "abc", EINVAL } } },
	{ "advisor_max_cpu", "70", { "50", "70" },
	  { { "-1", EINVAL }, { "abc", EINVAL } } },
	{ "advisor_min_pages_to_scan", "500", { "600", "500" },
	  { { "-1", EINVAL }, { "abc", EINVAL } } },
	{ "advisor_max_pages_to_scan", "30000", { "20000", "30000" },
	  { { "-1", EINVAL }, { "abc", EINVAL } } },
	{ "advisor_target_scan_time", "200", { "100", "200" },
	  { { "0", EINVAL }, { "-1", EINVAL }, { "abc", EINVAL } } },
	{ "pages_shared" }, { "pages_sharing" }, { "pages_unshared" },
	{ "pages_volatile" }, { "pages_scanned" }, { "pages_skipped" },
	{ "full_scans" }, { "stable_node_chains" }, { "stable_node_dups" },
	{ "ksm_zero_pages" }, { "general_profit" },
};

static int read_str(const char *name, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	return 0;
}

static void check_knob(const struct knob *k)
{
	char path[128], before[64], after[64], now[64];
	struct stat st;
	int i, r;

	snprintf(path, sizeof(path), KSM_DIR "%s", k->name);
	if (stat(path, &st)) {
		if (!strcmp(k->name, "merge_across_nodes") &&
		    access("/sys/devices/system/node", F_OK))
			return;	/* only on NUMA kernels */
		kt_check(0, "%s exists", k->name);
		return;
	}
	kt_check((st.st_mode & 0777) == (k->dflt ? 0644 : 0444),
		 "%s has mode %o", k->name, st.st_mode & 0777);
	if (!k->dflt) {
		kt_check(read_str(k->name, now, sizeof(now)) == 0 &&
			 (now[0] == '-' || (now[0] >= '0' && now[0] <= '9')),
			 "%s reads as a number (%s)", k->name, now);
		kt_check(kt_write(path, "0") == -EACCES,
			 "%s refuses writes, even from root", k->name);
		return;
	}
	read_str(k->name, now, sizeof(now));
	kt_check(!strcmp(now, k->dflt), "%s defaults to %s (reads %s)",
		 k->name, k->dflt, now);
	for (i = 0; i < 3 && k->good[i]; i++) {
		r = kt_write(path, k->good[i]);
		read_str(k->name, now, sizeof(now));
		kt_check(r == 0 && !strcmp(now, k->good[i]),
			 "%s takes %s (write %d, reads %s)", k->name,
			 k->good[i], r, now);
	}
	for (i = 0; i < 6 && k->bad[i].val; i++) {
		read_str(k->name, before, sizeof(before));
		r = kt_write(path, k->bad[i].val);
		read_str(k->name, after, sizeof(after));
		kt_check(r == -k->bad[i].err && !strcmp(before, after),
			 "%s refuses '%s' with %s (got %s), value stays %s",
			 k->name, k->bad[i].val, strerror(k->bad[i].err),
			 r ? strerror(-r) : "success", after);
	}
}

static void check_advisor_mode(void)
{
	char now[64];

	read_str("advisor_mode", now, sizeof(now));
	kt_check(!strcmp(now, "[none] scan-time"),
		 "advisor_mode defaults to '[none] scan-time' (%s)", now);
	kt_check(ksm_set("advisor_mode", "bogus") == -EINVAL,
		 "advisor_mode refuses 'bogus'");
	kt_check(ksm_set("advisor_mode", "scan-time") == 0,
		 "advisor_mode takes scan-time");
	read_str("advisor_mode", now, sizeof(now));
	kt_check(!strcmp(now, "none [scan-time]"), "advisor_mode reads %s", now);
	kt_check(ksm_set("pages_to_scan", "1234") == -EINVAL,
		 "pages_to_scan is refused while the advisor runs");
	kt_check(ksm_set("advisor_mode", "none") == 0,
		 "advisor_mode takes none");
	read_str("advisor_mode", now, sizeof(now));
	kt_check(!strcmp(now, "[none] scan-time"), "advisor_mode reads %s", now);
	ksm_set("pages_to_scan", "100");
}

/* A non-root process can read every file and write none. */
static void check_nonroot(void)
{
	pid_t pid = fork();
	int status;

	if (!pid) {
		int bad = 0;

		if (setgid(65534) || setuid(65534))
			_exit(2);
		for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
			char path[128];

			snprintf(path, sizeof(path), KSM_DIR "%s", knobs[i].name);
			if (access(path, F_OK))
				continue;
			bad += kt_read_long(path) == -1 &&
				strcmp(knobs[i].name, "advisor_mode");
			bad += kt_write(path, knobs[i].dflt ? knobs[i].dflt : "0")
				!= -EACCES;
		}
		_exit(bad ? 1 : 0);
	}
	waitpid(pid, &status, 0);
	kt_check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "a non-root user reads every file and writes none");
}

int main(void)
{
	ksm_require();
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		check_knob(&knobs[i]);
	check_advisor_mode();
	check_nonroot();
	return kt_exit();
}
