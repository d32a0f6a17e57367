// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rmap: rmap walks of KSM pages find every mapping when they search
 * the anon_vma's interval tree for one page offset (item_pgoff_range()).
 *
 * One process maps NLIN pages, every other one then made read-only, so
 * that each page is a VMA of its own, all under one anon_vma; page i
 * and page i + NLIN / 2 hold the same content.  A second range of NMOV
 * pages is moved with mremap() before it is registered: its page offsets
 * are no longer its virtual page numbers, so walks through it must search
 * the whole tree.  Its pages hold the contents of the first NMOV pages.
 * Once merged, ksmd is stopped and the process forks: the child maps the
 * KSM pages through PTEs copied by fork() and has no items of its own, so
 * only walks through the parent's items reach its mappings.  Then every
 * KSM page is migrated to the other NUMA node (move_pages(MOVE_ALL)):
 * migration unmaps the page from all its mappings first and fails if a
 * walk missed one.  Each page must be on the new node in both processes,
 * at the same frame, and read back as its shadow copy in both.
 */
#define _GNU_SOURCE
#include "ktest.h"

#define NLIN	256
#define NMOV	64
#define SEED	0x7a3a0000UL

static size_t ps;
static char *lin, *mov, *lin_shadow, *mov_shadow;

static void child(struct kt_proc *p)
{
	long bad;

	kt_who = "child: ";
	kt_put(p->up, 0);
	while (kt_get(p->down) > 0) {
		bad = kt_diff(lin, lin_shadow, NLIN, "split range") +
		      kt_diff(mov, mov_shadow, NMOV, "moved range");
		kt_put(p->up, bad);
	}
	kt_child_exit();
}

/* Pages of @n from @at (in @pid's and our view) on @node, same frames. */
static int on_node_both(pid_t pid, char *at, int n, int node, int *same)
{
	uint64_t mine[NLIN], theirs[NLIN];
	int i, on = 0;

	kt_pfns(at, n, mine);
	kt_pfns_of(pid, at, n, theirs);
	*same = 0;
	for (i = 0; i < n; i++) {
		on += kt_page_node(at + i * ps) == node;
		*same += mine[i] && mine[i] == theirs[i];
	}
	return on;
}

static long migrate(char *at, int n, int node)
{
	void *addr[NLIN];
	int nodes[NLIN], status[NLIN], i;

	for (i = 0; i < n; i++) {
		addr[i] = at + i * ps;
		nodes[i] = node;
	}
	return syscall(SYS_move_pages, 0, (unsigned long)n, addr, nodes,
		       status, KT_MPOL_MF_MOVE_ALL);
}

int main(void)
{
	struct kt_proc c;
	int i, node, on, same;
	char *tmp;

	ksm_begin();
	ps = kt_ps();
	if (!ksm_numa())
		kt_skip("one NUMA node: nothing to migrate to");
	ksm_must_set("run", 2);
	ksm_must_set("max_page_sharing", 256);

	lin = kt_map(NLIN);
	for (i = 0; i < NLIN; i++)
		kt_fill(lin + i * ps, ps, SEED + i % (NLIN / 2));
	tmp = kt_map(NMOV);
	for (i = 0; i < NMOV; i++)
		kt_fill(tmp + i * ps, ps, SEED + i);
	/* Move it: the range keeps its old page offsets. */
	mov = mmap(NULL, NMOV * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (mov == MAP_FAILED)
		kt_die("mmap");
	mov = mremap(tmp, NMOV * ps, NMOV * ps, MREMAP_MAYMOVE | MREMAP_FIXED,
		     mov);
	if (mov == MAP_FAILED)
		kt_die("mremap");
	if (madvise(lin, NLIN * ps, MADV_MERGEABLE) ||
	    madvise(mov, NMOV * ps, MADV_MERGEABLE))
		kt_die("madvise(MADV_MERGEABLE)");
	for (i = 1; i < NLIN; i += 2)
		if (mprotect(lin + i * ps, ps, PROT_READ))
			kt_die("mprotect");
	lin_shadow = kt_shadow(lin, NLIN);
	mov_shadow = kt_shadow(mov, NMOV);
	kt_note("%d pages in %d VMAs of one anon_vma, %d moved pages",
		NLIN, NLIN, NMOV);

	ksm_go(1000, 10);
	/* NLIN / 2 KSM pages; the first NMOV of them have a third mapping. */
	if (!ksm_expect("merged", NLIN / 2, NLIN / 2 + NMOV, 0))
		return kt_exit();
	ksm_must_set("run", 0);

	if (!kt_spawn(&c))
		child(&c);
	kt_get(c.up);
	kt_check(kt_ask(&c, 1) == 0, "after fork, both read their memory intact");

	node = kt_page_node(lin) == 0 ? 1 : 0;
	kt_check(migrate(lin, NLIN, node) == 0 && migrate(mov, NMOV, node) == 0,
		 "move_pages(MOVE_ALL) of every KSM page to node %d", node);
	on = on_node_both(c.pid, lin, NLIN, node, &same);
	kt_check(on == NLIN && same == NLIN,
		 "split range: %d of %d pages on node %d, %d at the child's "
		 "frame too", on, NLIN, node, same);
	on = on_node_both(c.pid, mov, NMOV, node, &same);
	kt_check(on == NMOV && same == NMOV,
		 "moved range: %d of %d pages on node %d, %d at the child's "
		 "frame too", on, NMOV, node, same);
	kt_check(kt_diff(lin, lin_shadow, NLIN, "split range") +
		 kt_diff(mov, mov_shadow, NMOV, "moved range") == 0,
		 "the parent reads its memory intact after migration");
	kt_check(kt_ask(&c, 1) == 0,
		 "the child reads its memory intact after migration");

	/* ksmd gives the child items of its own; then all unmerges. */
	ksm_must_set("run", 1);
	ksm_expect("the child's mappings joined", NLIN / 2,
		   2 * NLIN - NLIN / 2 + 2 * NMOV, 0);
	kt_check(kt_finish(&c) == 0, "the child exits");
	return kt_exit();
}
