/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel samepage merging: the interface mm/ offers to the rest of mm/.
 *
 * ksmd (mm/ksm.c) looks for anonymous pages of identical content in the
 * areas that applications registered with MADV_MERGEABLE or
 * PR_SET_MEMORY_MERGE, and maps one write-protected copy in place of them
 * all.  The functions below are the points where the rest of the memory
 * manager tells the engine about an mm's life (fork, exec, exit), asks it
 * to walk or move one of its pages, or accounts for a zero page it mapped.
 */
#ifndef _LINUX_KSM_H
#define _LINUX_KSM_H

#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/pagemap.h>

struct rmap_walk_control;

#ifdef CONFIG_KSM

/* Life of an mm: registration with ksmd, fork, exit. */
int __ksm_enter(struct mm_struct *mm);
void __ksm_exit(struct mm_struct *mm);
void ksm_fork(struct mm_struct *mm, struct mm_struct *oldmm);

/* madvise(), prctl() and new VMAs. */
int ksm_madvise(struct vm_area_struct *vma, unsigned long start,
		unsigned long end, int advice, unsigned long *vm_flags);
int ksm_enable_merge_any(struct mm_struct *mm);
int ksm_disable_merge_any(struct mm_struct *mm);
int ksm_disable(struct mm_struct *mm);
void ksm_add_vma(struct vm_area_struct *vma);
vm_flags_t ksm_vma_flags(struct mm_struct *mm, const struct file *file,
			 vm_flags_t vm_flags);
bool ksm_process_mergeable(struct mm_struct *mm);

/*
 * A zero-filled page that ksmd replaced by the shared zero page is mapped
 * with the dirty bit set: the zero page is never dirtied by anything else,
 * so the bit tells apart "KSM put the zero page here" from an ordinary
 * read fault on untouched memory.  Whoever clears such a PTE must call
 * ksm_might_unmap_zero_page() so that the counters stay exact.
 */
static inline bool ksm_pte_is_zero_page(pte_t pte)
{
	return is_zero_pfn(pte_pfn(pte)) && pte_dirty(pte);
}

extern atomic_long_t ksm_zero_pages;

static inline void ksm_might_unmap_zero_page(struct mm_struct *mm, pte_t pte)
{
	if (!ksm_pte_is_zero_page(pte))
		return;
	atomic_long_dec(&mm->ksm_zero_pages);
	atomic_long_dec(&ksm_zero_pages);
}

/* fork() copied @pte into @mm: count it if it is a KSM zero page. */
static inline void ksm_might_map_zero_page(struct mm_struct *mm, pte_t pte)
{
	if (!ksm_pte_is_zero_page(pte))
		return;
	atomic_long_inc(&mm->ksm_zero_pages);
	atomic_long_inc(&ksm_zero_pages);
}

/*
 * A new mm starts with nothing merged.  fork() makes it as a copy of the
 * parent's, so this must run before the page tables are copied.
 */
static inline void ksm_mm_init(struct mm_struct *mm)
{
	mm->ksm_merging_pages = 0;
	mm->ksm_rmap_items = 0;
	atomic_long_set(&mm->ksm_zero_pages, 0);
}

static inline long mm_ksm_zero_pages(struct mm_struct *mm)
{
	return atomic_long_read(&mm->ksm_zero_pages);
}

/* exec() keeps a process-wide PR_SET_MEMORY_MERGE for the new image. */
static inline int ksm_execve(struct mm_struct *mm)
{
	return test_bit(MMF_VM_MERGE_ANY, &mm->flags) ? __ksm_enter(mm) : 0;
}

/* Only an mm that ever registered with ksmd has anything to undo. */
static inline void ksm_exit(struct mm_struct *mm)
{
	if (!test_bit(MMF_VM_MERGEABLE, &mm->flags))
		return;
	__ksm_exit(mm);
}

struct folio *ksm_might_need_to_copy(struct folio *folio,
				     struct vm_area_struct *vma,
				     unsigned long addr);
void rmap_walk_ksm(struct folio *folio, struct rmap_walk_control *rwc);
void folio_migrate_ksm(struct folio *newfolio, struct folio *folio);
void collect_procs_ksm(struct folio *folio, struct page *page,
		       struct list_head *to_kill, int force_early);
long ksm_process_profit(struct mm_struct *mm);

#else /* !CONFIG_KSM: every hook compiles away */

static inline void ksm_add_vma(struct vm_area_struct *vma) { }
static inline vm_flags_t ksm_vma_flags(struct mm_struct *mm,
				       const struct file *file,
				       vm_flags_t vm_flags)
{
	return vm_flags;
}

static inline int ksm_disable(struct mm_struct *mm) { return 0; }
static inline void ksm_fork(struct mm_struct *mm, struct mm_struct *oldmm) { }
static inline int ksm_execve(struct mm_struct *mm) { return 0; }
static inline void ksm_exit(struct mm_struct *mm) { }
static inline void ksm_might_unmap_zero_page(struct mm_struct *mm, pte_t pte) { }
static inline void ksm_might_map_zero_page(struct mm_struct *mm, pte_t pte) { }
static inline void ksm_mm_init(struct mm_struct *mm) { }
static inline void collect_procs_ksm(struct folio *folio, struct page *page,
				     struct list_head *to_kill,
				     int force_early) { }

#ifdef CONFIG_MMU
/* madvise() refuses MADV_(UN)MERGEABLE itself when KSM is not built. */
static inline int ksm_madvise(struct vm_area_struct *vma, unsigned long start,
			      unsigned long end, int advice,
			      unsigned long *vm_flags)
{
	return 0;
}

static inline struct folio *ksm_might_need_to_copy(struct folio *folio,
						   struct vm_area_struct *vma,
						   unsigned long addr)
{
	return folio;
}

static inline void rmap_walk_ksm(struct folio *folio,
				 struct rmap_walk_control *rwc) { }
static inline void folio_migrate_ksm(struct folio *newfolio,
				     struct folio *folio) { }
#endif /* CONFIG_MMU */

#endif /* CONFIG_KSM */

#endif /* _LINUX_KSM_H */
