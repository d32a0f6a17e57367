// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_zero_race [SECONDS]: fork in a loop while ksmd (use_zero_pages=1)
 * keeps replacing one zero-filled page by the zero page; the page is
 * written again (count back to 0) as soon as it merged.  ksm_zero_pages
 * must never go negative and must be 0 once the page is unmapped.
 *
 * It failed on the engine of fd11ae9: merge_with_zero_page() counted the
 * zero page only after map_ksm_page() dropped the mmap lock, so a fork()
 * in between saw the parent's count at 0, ksm_fork() skipped counting the
 * child's PTEs, and the child's exit took 1 off the global count that
 * was never added (-2 after 81 merges in 60 s on the release kernel).
 * map_ksm_page() now counts under the lock.
 */
#include "ktest.h"

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 60;
	long forks = 0, merges = 0, min = 0, z;
	int i;
	time_t end;
	char *mem;
	pid_t pid;

	ksm_begin();
	ksm_go(1000, 0);
	ksm_must_set("use_zero_pages", 1);
	mem = kt_map(1);
	memset(mem, 0, kt_ps());
	if (madvise(mem, kt_ps(), MADV_MERGEABLE))
		kt_die("madvise");
	end = time(NULL) + seconds;
	while (time(NULL) < end) {
		pid = fork();
		if (!pid)
			_exit(0);
		waitpid(pid, NULL, 0);
		forks++;
		z = ksm_get("ksm_zero_pages");
		if (z < min)
			min = z;
		if (z > 0) {
			merges++;
			mem[0] = 0;	/* write fault: the count goes back */
		}
	}
	munmap(mem, kt_ps());
	/*
	 * The last child's mm may outlive its exit for a moment: ksmd may
	 * hold a reference on it (the child is registered too), and the
	 * mm's zero page goes only with its last mmput().
	 */
	for (i = 0; i < 500 && (z = ksm_get("ksm_zero_pages")); i++)
		usleep(20000);
	kt_check(min >= 0 && z == 0, "%ld forks, %ld merges to the zero page: "
		 "ksm_zero_pages lowest %ld, %ld at the end (want >= 0 and 0)",
		 forks, merges, min, z);
	/* Without merges racing with forks, the test proved nothing. */
	kt_check(merges >= 10, "the page merged into the zero page %ld "
		 "times during the forks (want at least 10)", merges);
	return kt_exit();
}
