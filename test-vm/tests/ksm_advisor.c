// SPDX-License-Identifier: GPL-2.0
/*
 * The scan-time advisor: selecting it sets pages_to_scan to
 * advisor_min_pages_to_scan and makes it read-only; while ksmd scans a
 * workload it retunes pages_to_scan, within advisor_max_pages_to_scan;
 * selecting none puts back the default 100 and makes it writable again.
 */
#include "ktest.h"

#define NPAGES	4096

static char *mem;

static void workload(void)
{
	size_t ps = kt_ps();
	int i;

	mem = kt_map(NPAGES);
	for (i = 0; i < NPAGES; i++)
		kt_fill(mem + i * ps, ps, 1234567 + i);
	if (madvise(mem, NPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
}

static void check_mode(const char *want)
{
	char now[32];

	ksm_advisor_mode(now, sizeof(now));
	kt_check(!strcmp(now, want), "advisor_mode selects %s (%s)", want, now);
}

/* Sample pages_to_scan after each of @scans passes; values off @from. */
static int retunes(long from, int scans, long max)
{
	long v, lo = from, hi = from;
	int i, changed = 0, over = 0;

	for (i = 0; i < scans; i++) {
		if (ksm_wait_scans(1, 300))
			break;
		v = ksm_get("pages_to_scan");
		changed += v != from;
		over += v > max || v <= 0;
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	kt_note("pages_to_scan went from %ld through [%ld, %ld] in %d passes",
		from, lo, hi, i);
	kt_check(!over, "pages_to_scan stayed within 1..%ld", max);
	return changed;
}

int main(void)
{
	ksm_begin();
	workload();
	check_mode("none");
	ksm_go(100, 20);
	kt_check(ksm_set("advisor_target_scan_time", "1") == 0 &&
		 ksm_set("advisor_max_pages_to_scan", "20000") == 0,
		 "advisor_target_scan_time 1 s, advisor_max_pages_to_scan 20000");
	kt_check(ksm_set("advisor_mode", "scan-time") == 0,
		 "advisor_mode takes scan-time");
	check_mode("scan-time");
	kt_check(ksm_get("pages_to_scan") == ksm_get("advisor_min_pages_to_scan"),
		 "pages_to_scan starts at advisor_min_pages_to_scan (%ld)",
		 ksm_get("pages_to_scan"));
	kt_check(ksm_set("pages_to_scan", "1234") == -EINVAL &&
		 ksm_get("pages_to_scan") == ksm_get("advisor_min_pages_to_scan"),
		 "pages_to_scan refuses writes with EINVAL while the advisor runs");
	kt_check(retunes(ksm_get("pages_to_scan"), 6, 20000) > 0,
		 "the advisor retuned pages_to_scan");
	kt_check(ksm_set("advisor_max_pages_to_scan", "300") == 0,
		 "advisor_max_pages_to_scan takes 300");
	ksm_wait_scans(1, 300);
	retunes(ksm_get("pages_to_scan"), 3, 300);
	kt_check(ksm_set("advisor_mode", "none") == 0,
		 "advisor_mode takes none");
	check_mode("none");
	kt_check(ksm_get("pages_to_scan") == 100,
		 "pages_to_scan is back to 100 (%ld)", ksm_get("pages_to_scan"));
	kt_check(ksm_set("pages_to_scan", "1234") == 0 &&
		 ksm_get("pages_to_scan") == 1234,
		 "pages_to_scan is writable again");
	kt_check(ksm_wait_scans(1, 300) == 0 && ksm_get("pages_to_scan") == 1234,
		 "and ksmd leaves it alone");
	munmap(mem, NPAGES * kt_ps());
	return kt_exit();
}
