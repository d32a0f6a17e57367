// SPDX-License-Identifier: GPL-2.0
/*
 * merge_exec [-u UID] COMMAND [ARG...]: run COMMAND with every mapping it
 * will ever make mergeable, as user UID: a launcher that does what
 * systemd does for a unit with MemoryKSM=yes (prctl, then the unit's
 * User=, then execve).
 *
 * PR_SET_MEMORY_MERGE (prctl 67, arg 1) sets MMF_VM_MERGE_ANY on our mm;
 * execve() carries it over to the new mm (ksm_execve()) and fork() to the
 * children's, so that COMMAND and every child it forks have all their
 * anonymous memory registered with KSM without knowing of it (fuzz.sh
 * starts trinity so, client-memoryksm Debian's stress-ng).  With -u, the
 * supplementary groups are dropped and the group and user ids become UID
 * before the exec: trinity then fuzzes without privileges and cannot
 * touch /sys/kernel/mm/ksm, other users' processes, or the machine
 * itself.  COMMAND also gets oom_score_adj 1000, so that the OOM killer
 * takes it, not the test, and a process group of its own, which the test
 * signals.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

static void die(const char *what)
{
	fprintf(stderr, "merge_exec: %s: %s\n", what, strerror(errno));
	exit(127);
}

int main(int argc, char **argv)
{
	long uid = -1;
	int i = 1, fd;

	if (argc > 2 && !strcmp(argv[1], "-u")) {
		uid = strtol(argv[2], NULL, 10);
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: merge_exec [-u UID] COMMAND [ARG...]\n");
		return 2;
	}
	if (setpgid(0, 0))
		die("setpgid");
	fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd < 0 || write(fd, "1000", 4) != 4)
		die("oom_score_adj");
	close(fd);
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		die("prctl(PR_SET_MEMORY_MERGE, 1)");
	if (uid >= 0 && (setgroups(0, NULL) || setgid(uid) || setuid(uid)))
		die("dropping privileges");
	if (prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 1)
		die("PR_GET_MEMORY_MERGE is not 1");
	execvp(argv[i], argv + i);
	die(argv[i]);
}
