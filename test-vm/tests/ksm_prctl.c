// SPDX-License-Identifier: GPL-2.0
/*
 * PR_SET_MEMORY_MERGE: merges memory the process never madvised, is
 * inherited across fork and exec, reads back with PR_GET_MEMORY_MERGE,
 * and turning it off unmerges.  Bad arguments fail with EINVAL.
 */
#include <sys/prctl.h>
#include <sys/wait.h>
#include "ktest.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

#define NPAGES 64

static int child_after_exec(void)
{
	return prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
	size_t ps = getpagesize();
	char *p, *shadow;
	int status, i;
	pid_t pid;

	if (argc > 1 && !strcmp(argv[1], "exec-child"))
		return child_after_exec();
	ksm_require();
	kt_check(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 0,
		 "PR_GET_MEMORY_MERGE is 0 by default");
	kt_check(prctl(PR_SET_MEMORY_MERGE, 2, 0, 0, 0) == -1 && errno == EINVAL,
		 "PR_SET_MEMORY_MERGE refuses 2");
	kt_check(prctl(PR_SET_MEMORY_MERGE, 1, 1, 0, 0) == -1 && errno == EINVAL,
		 "PR_SET_MEMORY_MERGE refuses stray arguments");
	kt_check(prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0 &&
		 prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1,
		 "PR_SET_MEMORY_MERGE 1 sticks");

	p = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shadow = malloc(NPAGES * ps);
	if (p == MAP_FAILED || !shadow)
		kt_die("mmap");
	for (i = 0; i < NPAGES; i++)
		kt_fill(p + i * ps, ps, 4242);
	memcpy(shadow, p, NPAGES * ps);

	ksm_set("run", "2");
	ksm_set("pages_to_scan", "1000");
	ksm_set("sleep_millisecs", "10");
	ksm_set("run", "1");
	for (i = 0; i < 600 && kt_read_long("/proc/self/ksm_merging_pages") < NPAGES; i++)
		usleep(100000);
	kt_check(kt_read_long("/proc/self/ksm_merging_pages") == NPAGES,
		 "memory never madvised is merged (%ld of %d pages)",
		 kt_read_long("/proc/self/ksm_merging_pages"), NPAGES);

	pid = fork();
	if (!pid)
		_exit(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1 &&
		      kt_read_long("/proc/self/ksm_merging_pages") == 0 ? 0 : 1);
	waitpid(pid, &status, 0);
	kt_check(WIFEXITED(status) && !WEXITSTATUS(status),
		 "a child inherits the setting, and its merge count starts at 0");
	pid = fork();
	if (!pid) {
		execl("/proc/self/exe", argv[0], "exec-child", (char *)NULL);
		_exit(2);
	}
	waitpid(pid, &status, 0);
	kt_check(WIFEXITED(status) && !WEXITSTATUS(status),
		 "the setting survives exec (status %d)", WEXITSTATUS(status));

	kt_check(prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0) == 0 &&
		 prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 0,
		 "PR_SET_MEMORY_MERGE 0 sticks");
	kt_check(kt_read_long("/proc/self/ksm_merging_pages") == 0,
		 "turning it off unmerged every page (%ld left)",
		 kt_read_long("/proc/self/ksm_merging_pages"));
	kt_check(!memcmp(p, shadow, NPAGES * ps), "memory matches its shadow");
	ksm_set("run", "2");
	ksm_set("run", "0");
	ksm_set("pages_to_scan", "100");
	ksm_set("sleep_millisecs", "20");
	return kt_exit();
}
