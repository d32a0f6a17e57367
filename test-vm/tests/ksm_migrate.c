// SPDX-License-Identifier: GPL-2.0
/*
 * Migration of KSM pages: two processes A and B share 64 KSM pages; A
 * moves them to the other NUMA node with move_pages(MPOL_MF_MOVE_ALL),
 * then back.  Every move must succeed, both processes must still map one
 * frame per page, on the new node, with their contents, and the counters
 * must not change (no unmerge, no double count) while ksmd keeps scanning.
 * A write after migration must still copy, in the writer only.
 */
#include "ktest.h"

#define NPAGES	64

enum { CMD_PFNS = 1, CMD_NODES, CMD_MOVE, CMD_CHECK, CMD_WRITE };

static size_t ps;
static struct {
	uint64_t pfn[2][NPAGES];
	int node[2][NPAGES];
	int target, moved, rc, status, tries;
} *sh;

/* Move every page to sh->target; pages found busy are tried again. */
static void move_all(char *mem)
{
	void *pages[NPAGES];
	int nodes[NPAGES], status[NPAGES], i, try;

	for (try = 0; try < 5; try++) {
		for (i = 0; i < NPAGES; i++) {
			pages[i] = mem + i * ps;
			nodes[i] = sh->target;
			status[i] = -1;
		}
		sh->rc = syscall(SYS_move_pages, 0, (unsigned long)NPAGES,
				 pages, nodes, status, KT_MPOL_MF_MOVE_ALL);
		if (sh->rc)
			sh->rc = -errno;
		for (i = 0, sh->moved = 0, sh->status = 0; i < NPAGES; i++) {
			sh->moved += status[i] == sh->target;
			if (status[i] != sh->target && !sh->status)
				sh->status = status[i];
		}
		if (sh->moved == NPAGES)
			break;
		usleep(100000);
	}
	sh->tries = try + 1;
}

static int child(struct kt_proc *p, int who)
{
	char *mem = kt_map(NPAGES), *shadow;
	long cmd;
	int i;

	kt_who = who ? "B: " : "A: ";
	for (i = 0; i < NPAGES; i++)
		kt_fill(mem + i * ps, ps, 5151 + i);
	shadow = kt_shadow(mem, NPAGES);
	if (madvise(mem, NPAGES * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	kt_put(p->up, 0);
	while ((cmd = kt_get(p->down)) > 0) {
		if (cmd == CMD_PFNS)
			kt_pfns(mem, NPAGES, sh->pfn[who]);
		if (cmd == CMD_NODES)
			for (i = 0; i < NPAGES; i++)
				sh->node[who][i] = kt_page_node(mem + i * ps);
		if (cmd == CMD_MOVE)
			move_all(mem);
		if (cmd == CMD_CHECK)
			kt_check(kt_diff(mem, shadow, NPAGES, "memory") == 0,
				 "every page matches the shadow");
		if (cmd == CMD_WRITE)
			kt_poke(mem, shadow, 5 * ps + 5, mem[5 * ps + 5] ^ 1);
		kt_put(p->up, kt_failures);
	}
	kt_child_exit();
}

static int ask_both(struct kt_proc *kid, long cmd)
{
	return kt_ask(&kid[0], cmd) != 0 || kt_ask(&kid[1], cmd) != 0;
}

/* Pages whose frame differs between A and B, or sits on another node. */
static int misplaced(int node)
{
	int i, bad = 0;

	for (i = 0; i < NPAGES; i++)
		bad += !sh->pfn[0][i] || sh->pfn[0][i] != sh->pfn[1][i] ||
		       (node >= 0 && (sh->node[0][i] != node ||
				      sh->node[1][i] != node));
	return bad;
}

static void migrate_to(struct kt_proc *kid, int node)
{
	uint64_t before = sh->pfn[0][0];

	sh->target = node;
	kt_ask(&kid[0], CMD_MOVE);
	kt_check(sh->rc == 0 && sh->moved == NPAGES,
		 "move_pages to node %d: rc %d, %d of %d pages there after %d "
		 "call(s) (a page's status: %d)", node, sh->rc, sh->moved,
		 NPAGES, sh->tries, sh->status);
	ask_both(kid, CMD_PFNS);
	ask_both(kid, CMD_NODES);
	kt_check(sh->pfn[0][0] != before,
		 "the KSM pages got new frames (%#lx -> %#lx)", (long)before,
		 (long)sh->pfn[0][0]);
	kt_check(misplaced(node) == 0,
		 "A and B map the same frame for every page, on node %d "
		 "(%d pages not)", node, misplaced(node));
	kt_check(ask_both(kid, CMD_CHECK) == 0, "both match their shadows");
	ksm_wait_scans(2, 300);
	kt_check(ksm_get("pages_shared") == NPAGES &&
		 ksm_get("pages_sharing") == NPAGES &&
		 kt_merging_pages(kid[0].pid) == NPAGES &&
		 kt_merging_pages(kid[1].pid) == NPAGES,
		 "two scans later the counters are unchanged (shared %ld, "
		 "sharing %ld)", ksm_get("pages_shared"), ksm_get("pages_sharing"));
	ask_both(kid, CMD_PFNS);
	kt_check(misplaced(-1) == 0, "and the pages are still merged");
}

int main(void)
{
	struct kt_proc kid[2];
	int who, home;

	ksm_begin();
	if (access("/sys/devices/system/node/node1", F_OK))
		kt_skip("needs two NUMA nodes");
	ps = kt_ps();
	sh = kt_shared(sizeof(*sh));
	who = kt_spawn_ready(kid, 2);
	if (who >= 0)
		return child(&kid[who], who);
	ksm_go(1000, 10);
	ksm_expect("merged", NPAGES, NPAGES, 0);
	ask_both(kid, CMD_PFNS);
	ask_both(kid, CMD_NODES);
	home = sh->node[0][0];
	kt_check(home >= 0 && misplaced(home) == 0,
		 "A and B map the same frames, on node %d", home);
	ksm_print("merged");

	migrate_to(kid, !home);
	migrate_to(kid, home);
	kt_ask(&kid[1], CMD_WRITE);
	kt_check(ask_both(kid, CMD_CHECK) == 0,
		 "after B writes a migrated KSM page, both match their shadows");
	ask_both(kid, CMD_PFNS);
	kt_check(sh->pfn[0][5] != sh->pfn[1][5] && misplaced(-1) == 1,
		 "only the written page differs between A and B");
	for (who = 0; who < 2; who++)
		kt_check(kt_finish(&kid[who]) == 0, "%c exits cleanly", "AB"[who]);
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
		 "after both exited, ksmd brings every counter back to 0");
	return kt_exit();
}
