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

enum { CMD_PFNS = KSM_AB_CMD, CMD_NODES, CMD_MOVE, CMD_WRITE };

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

static uint64_t seed_of(int who, int i)
{
	return 5151 + i;
}

static void serve(struct ksm_ab *c, long cmd)
{
	int i;

	if (cmd == CMD_PFNS)
		kt_pfns(c->mem, NPAGES, sh->pfn[c->who]);
	if (cmd == CMD_NODES)
		for (i = 0; i < NPAGES; i++)
			sh->node[c->who][i] = kt_page_node(c->mem + i * ps);
	if (cmd == CMD_MOVE)
		move_all(c->mem);
	if (cmd == CMD_WRITE)
		kt_poke(c->mem, c->shadow, 5 * ps + 5, c->mem[5 * ps + 5] ^ 1);
}

static const struct ksm_ab_ops ab = {
	.npages = NPAGES, .seed = seed_of, .serve = serve,
};

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
	ksm_ab_ask(kid, CMD_PFNS);
	ksm_ab_ask(kid, CMD_NODES);
	kt_check(sh->pfn[0][0] != before,
		 "the KSM pages got new frames (%#lx -> %#lx)", (long)before,
		 (long)sh->pfn[0][0]);
	kt_check(misplaced(node) == 0,
		 "A and B map the same frame for every page, on node %d "
		 "(%d pages not)", node, misplaced(node));
	kt_check(ksm_ab_ask(kid, KSM_AB_CHECK) == 0, "both match their shadows");
	ksm_wait_scans(2, 300);
	kt_check(ksm_get("pages_shared") == NPAGES &&
		 ksm_get("pages_sharing") == NPAGES &&
		 kt_merging_pages(kid[0].pid) == NPAGES &&
		 kt_merging_pages(kid[1].pid) == NPAGES,
		 "two scans later the counters are unchanged (shared %ld, "
		 "sharing %ld)", ksm_get("pages_shared"), ksm_get("pages_sharing"));
	ksm_ab_ask(kid, CMD_PFNS);
	kt_check(misplaced(-1) == 0, "and the pages are still merged");
}

int main(void)
{
	struct kt_proc kid[2];
	int home;

	ksm_begin();
	if (access("/sys/devices/system/node/node1", F_OK))
		kt_skip("needs two NUMA nodes");
	ps = kt_ps();
	sh = kt_shared(sizeof(*sh));
	ksm_ab_start(kid, &ab);
	ksm_go(1000, 10);
	ksm_expect("merged", NPAGES, NPAGES, 0);
	ksm_ab_ask(kid, CMD_PFNS);
	ksm_ab_ask(kid, CMD_NODES);
	home = sh->node[0][0];
	kt_check(home >= 0 && misplaced(home) == 0,
		 "A and B map the same frames, on node %d", home);
	ksm_print("merged");

	migrate_to(kid, !home);
	migrate_to(kid, home);
	kt_ask(&kid[1], CMD_WRITE);
	kt_check(ksm_ab_ask(kid, KSM_AB_CHECK) == 0,
		 "after B writes a migrated KSM page, both match their shadows");
	ksm_ab_ask(kid, CMD_PFNS);
	kt_check(sh->pfn[0][5] != sh->pfn[1][5] && misplaced(-1) == 1,
		 "only the written page differs between A and B");
	ksm_ab_finish(kid);
	kt_check(ksm_wait_for(ksm_zero_cond, NULL, 6, 300) == 0,
		 "after both exited, ksmd brings every counter back to 0");
	return kt_exit();
}
