// SPDX-License-Identifier: GPL-2.0
/*
 * KSM zero pages across fork(): the child's count must be what it really
 * maps.  A parent has NZERO KSM zero pages in a plain VMA and NZERO in a
 * VMA marked MADV_DONTFORK, which fork() does not copy.  A child that
 * exits at once must leave ksm_zero_pages at 2 * NZERO; one that stays
 * must have NZERO in its own ksm_stat (and the global count 3 * NZERO).
 * A child that counted the parent's whole number would leave the global
 * count NZERO too high after its exit, for ever.
 */
#include "ktest.h"

#define NZERO	64

static size_t ps;

static char *zero_area(int dontfork)
{
	char *p = kt_map(NZERO);

	memset(p, 0, NZERO * ps);	/* anonymous pages full of zeroes */
	if (dontfork && madvise(p, NZERO * ps, MADV_DONTFORK))
		kt_die("madvise(MADV_DONTFORK)");
	if (madvise(p, NZERO * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	return p;
}

static int zero_is(void *arg)
{
	return ksm_get("ksm_zero_pages") == *(long *)arg;
}

int main(void)
{
	long want = 2 * NZERO;
	int fds[2];
	pid_t pid;
	char c;

	ksm_begin();
	ps = kt_ps();
	ksm_must_set("use_zero_pages", 1);
	zero_area(0);
	zero_area(1);
	ksm_go(1000, 10);
	kt_check(!ksm_wait_for(zero_is, &want, 5, 60),
		 "%d zero-filled pages on the zero page", 2 * NZERO);
	ksm_print("merged");

	pid = kt_fork();
	if (!pid)
		_exit(0);
	kt_check(kt_join(pid) == 0, "a child exits at once");
	kt_check(ksm_get("ksm_zero_pages") == 2 * NZERO,
		 "after its exit ksm_zero_pages is %d again (%ld)", 2 * NZERO,
		 ksm_get("ksm_zero_pages"));

	if (pipe(fds))
		kt_die("pipe");
	pid = kt_fork();
	if (!pid) {
		close(fds[1]);
		if (read(fds[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[0]);
	kt_check(kt_ksm_stat(pid, "ksm_zero_pages") == NZERO,
		 "a child that stays counts the %d it maps (%ld)", NZERO,
		 kt_ksm_stat(pid, "ksm_zero_pages"));
	kt_check(ksm_get("ksm_zero_pages") == 3 * NZERO,
		 "and the global count has them too (%ld, want %d)",
		 ksm_get("ksm_zero_pages"), 3 * NZERO);
	close(fds[1]);
	kt_check(kt_join(pid) == 0, "the second child exits cleanly");
	kt_check(ksm_get("ksm_zero_pages") == 2 * NZERO,
		 "after its exit ksm_zero_pages is %d again (%ld)", 2 * NZERO,
		 ksm_get("ksm_zero_pages"));
	return kt_exit();
}
