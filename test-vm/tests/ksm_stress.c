// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_stress [SECONDS]: for 25 s (by default), with ksmd at full speed
 * (sleep_millisecs=0, pages_to_scan=1000) and compaction forced every
 * 200 ms, keep starting processes that map mergeable memory (half of them
 * through PR_SET_MEMORY_MERGE), fork writers, unmerge part of it with
 * MADV_UNMERGEABLE, push it out with MADV_PAGEOUT, move it between NUMA
 * nodes with move_pages, munmap part of it and exit at any moment.  Every
 * process checks its memory against its own shadow after each step; the
 * kernel must log no splat, and when everything has exited, ksmd must
 * bring every counter back to zero.
 */
#include "ktest.h"

#define NPAGES	128
#define NKIDS	3

static size_t ps;
static int nodes;

struct life {
	char *mem, *shadow;
	unsigned int r;
	int bad;
};

static void verify(struct life *l, const char *step, size_t from, size_t n)
{
	if (kt_diff(l->mem + from * ps, l->shadow + from * ps, n, step)) {
		kt_note("not ok: memory differs from the shadow after %s",
			step);
		l->bad++;
	}
}

/* A forked writer: writes, maybe unmerges half, checks, exits. */
static void writer(struct life *l, int k)
{
	int i;

	for (i = k; i < NPAGES; i += 5)
		kt_poke(l->mem, l->shadow, i * ps + 11 * k, (char)(l->r + k));
	usleep(rand_r(&l->r) % 20000);
	verify(l, "a forked writer's writes", 0, NPAGES);
	if (k == NKIDS - 1) {
		if (madvise(l->mem, NPAGES / 2 * ps, MADV_UNMERGEABLE))
			l->bad++;
		verify(l, "MADV_UNMERGEABLE", 0, NPAGES);
	}
	_exit(l->bad ? 1 : 0);
}

static void move_some(struct life *l, int node)
{
	void *pages[8];
	int target[8], status[8], i;

	for (i = 0; i < 8; i++) {
		pages[i] = l->mem + (i * 13 % NPAGES) * ps;
		target[i] = node;
	}
	syscall(SYS_move_pages, 0, 8UL, pages, target, status,
		KT_MPOL_MF_MOVE_ALL);
	verify(l, "move_pages", 0, NPAGES);
}

static void one_life(unsigned int r)
{
	struct life l = { .r = r };
	pid_t kid[NKIDS];
	int i, status;

	kt_who = "stress: ";
	if (r & 1)
		prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0);
	l.mem = kt_map(NPAGES);
	for (i = 0; i < NPAGES; i++) {
		if (i % 8 == 7)
			kt_fill(l.mem + i * ps, ps, r * NPAGES + i + 1);
		else
			memset(l.mem + i * ps, i % 4, ps);
	}
	l.shadow = kt_shadow(l.mem, NPAGES);
	madvise(l.mem, NPAGES * ps, MADV_MERGEABLE);
	for (i = 0; i < NKIDS; i++) {
		kid[i] = fork();
		if (!kid[i])
			writer(&l, i);
		usleep(rand_r(&l.r) % 10000);
	}
	usleep(rand_r(&l.r) % 30000);
	verify(&l, "merging", 0, NPAGES);
	if (r % 3 == 0 && !madvise(l.mem, NPAGES * ps, MADV_PAGEOUT))
		verify(&l, "MADV_PAGEOUT", 0, NPAGES);
	if (r % 3 == 1 && nodes > 1)
		move_some(&l, (r / 3) & 1);
	if (munmap(l.mem + 32 * ps, 16 * ps))
		l.bad++;
	verify(&l, "munmap", 0, 32);
	verify(&l, "munmap", 48, NPAGES - 48);
	for (i = 0; i < NKIDS; i++)
		if (waitpid(kid[i], &status, 0) != kid[i] ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			l.bad++;
	_exit(l.bad ? 1 : 0);
}

static pid_t compactor(int seconds)
{
	time_t end = time(NULL) + seconds;
	pid_t pid = kt_fork();

	if (pid)
		return pid;
	while (time(NULL) < end) {
		kt_write("/proc/sys/vm/compact_memory", "1");
		usleep(200000);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 25;
	unsigned int rounds = 0, bad = 0;
	long sharing, max_sharing = 0;
	time_t end;
	pid_t comp, pid;

	ksm_begin();
	ps = kt_ps();
	nodes = access("/sys/devices/system/node/node1", F_OK) ? 1 : 2;
	ksm_go(1000, 0);
	ksm_must_set("smart_scan", 1);
	comp = compactor(seconds);
	end = time(NULL) + seconds;
	while (time(NULL) < end) {
		pid = kt_fork();
		if (!pid)
			one_life(rounds * 2654435761U + rounds);
		rounds++;
		if (kt_nkids >= 5)
			bad += kt_join(kt_kids[kt_kids[0] == comp]) != 0;
		sharing = ksm_get("pages_sharing") + ksm_get("ksm_zero_pages");
		if (sharing > max_sharing)
			max_sharing = sharing;
	}
	kt_check(kt_join(comp) == 0, "the compactor ran");
	while (kt_nkids)
		bad += kt_join(kt_kids[0]) != 0;
	kt_check(bad == 0, "%u processes and their writers always matched "
		 "their shadows (%u did not)", rounds, bad);
	/* The races only happened if ksmd merged while the lives went on. */
	kt_check(max_sharing >= 8, "ksmd merged during the stress (at most "
		 "%ld pages saved at once, want at least 8)", max_sharing);
	ksm_print("after the stress");
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
		 "after everything exited, ksmd brings every counter back to 0");
	return kt_exit();
}
