// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel samepage merging: a content-hash driven engine.
 *
 * WHAT IS SCANNED
 *   Every mm that asked for merging (MADV_MERGEABLE on some VMA, or
 *   PR_SET_MEMORY_MERGE for the whole process) owns a struct ksm_mm on
 *   ksm_mm_list.  The ksmd thread walks that list round-robin; inside an mm
 *   it visits, in address order, each present anonymous page of each
 *   VM_MERGEABLE VMA that has an anon_vma, pages_to_scan pages per batch.
 *   One walk over the whole list is a "pass" (full_scans counts them).
 *
 * SCAN BATCHES
 *   ksmd works in batches of pages_to_scan pages under ksm_mutex, then
 *   naps sleep_millisecs (at least KSM_PASS_REST_MS after a pass).  One
 *   page-table walk collects up to KSM_FOUND_MAX (32) pages of an mm, each
 *   with a reference (struct ksm_found).  A page still mapped to the KSM
 *   page its item was merged into is recognised inside the walk, under the
 *   page table lock, and costs neither a reference nor a lookup.  After a
 *   batch, a few KSM pages are scrubbed (see "Scrubbing KSM pages").
 *
 * GUESSING AND RUNS
 *   Before a page is hashed, two guesses of its KSM page are tried: first
 *   the one the previous mm on the list maps at the same address
 *   (sibling_item()), then the one the last merge went to (ksm_guess).
 *   A guess is looked at on three cache lines; pages that pass gather in
 *   a run of up to 32 PTEs of one page table, merged in one page-table
 *   round by replace_anon_ptes(), which compares each page in full.  A
 *   page that fails goes the usual way.
 *
 * PER-PAGE METADATA
 *   Each page ksmd has looked at has a 32-byte struct ksm_item, kept in an
 *   xarray of its ksm_mm indexed by virtual page number, so that no list
 *   has to be kept sorted and no item needs a list link.  The low bits of
 *   the item's address word hold its state (stable/unstable), the pass
 *   parity of its unstable entry and the smart-scan back-off counters.
 *   Items of pages that vanished are freed as the cursor passes them.
 *
 * HOW CANDIDATES ARE FOUND
 *   A page is summarised by a key {xxhash of its content under a secret
 *   seed, merge domain folded to 32 bits}.  The domain says whom the page
 *   may be shared with: 0 for everybody (merge_domain=global), else a
 *   64-bit tag derived from the owner's memory cgroup, user namespace or
 *   registration (see domain_tag()); a key match counts only if the full
 *   tags are equal too, so pages of two domains never merge.
 *   Two hash indexes exist:
 *   - the stable index holds one struct ksm_node per KSM page (a shared,
 *     write-protected page), hashed by the key of its content;
 *   - the unstable index holds the items of ordinary pages seen in the
 *     current pass.  Their content may change at any time, which is fine:
 *     they are only hints, and they are forgotten when a pass ends.
 *   A page is looked up first in the stable index, then in the unstable
 *   index, and entered into the unstable index at once if nothing matched:
 *   there is no "wait a pass until the checksum settles" step.  Whole pages
 *   are compared only when keys match, and at most KSM_LOOKUP_MAX pages of
 *   another content per lookup, so that pages made to share a hash cost
 *   linear work.  With merge_across_nodes=0, a candidate only counts if it
 *   sits on the same NUMA node as the page.
 *
 * HOW A MERGE IS MADE SAFE
 *   A page's content is only trusted once nobody can write to it: its PTE
 *   cleared and the TLB flushed, and the folio without references beyond
 *   its mappings (so without a DMA pin).  Mapping a page onto an existing
 *   KSM page (or the zero page) takes one page-table round, in
 *   replace_anon_page_pte() (mm/memory.c): clear and flush, count the
 *   references, compare in full, and map the KSM page, or put the old PTE
 *   back.  Merging two unstable pages first makes one of them a KSM page
 *   in place, read-only, with folio_wrprotect_one() (mm/rmap.c), and gives
 *   it its node at once, then maps the other onto it that way: a KSM page
 *   never exists without a node that lists a mapping of it, and room for
 *   a mapping is reserved in the node before a page table maps it.  A
 *   later write to any mapping of a KSM page faults and copies (COW_KSM).
 *
 * SHARING LIMIT AND CHAINS
 *   A KSM page is mapped at most max_page_sharing times through ksmd.
 *   When content is wanted by more, another KSM page with the same content
 *   is created and linked to the first through ksm_node.dups: such a group
 *   of duplicates is a "chain" (stable_node_chains counts groups of two or
 *   more, stable_node_dups the KSM pages in them).
 *
 * REVERSE MAPPING
 *   folio->mapping of a KSM page points to its ksm_node (tagged with
 *   PAGE_MAPPING_KSM).  The node keeps an array of the items mapping it,
 *   each holding a reference on the anon_vma of its VMA, so rmap_walk_ksm()
 *   finds every mapping, including those inherited by fork() which have no
 *   item of their own.  The node holds no reference on the page: it looks
 *   through folio->mapping to check the page is still its own (see
 *   node_folio()), which lets reclaim free KSM pages at will.
 *
 * LOCKS (innermost last)
 *   ksm_mutex   - the engine's big lock: both indexes, every ksm_node and
 *                 ksm_item and the counters below.  Held by ksmd for a
 *                 whole batch and by the sysfs knobs that reset state.
 *   mmap_lock   - of one scanned mm at a time, read mode, after mmget.
 *   folio lock  - of a KSM page: needed to change its node's item array,
 *                 which rmap walkers read while they hold that lock.
 *   PTL         - of the page table whose PTEs ksmd write-protects or
 *                 replaces; taken inside the folio lock by
 *                 page_vma_mapped_walk() and the helpers in mm/.
 *   ksm_list_lock - spinlock for ksm_mm_list, ksm_mm_hash and the scan
 *                 cursor's mm; taken from fork/exit/madvise without the
 *                 mutex, so nothing sleeps under it.
 *   xa_lock     - of a ksm_mm's item xarray: taken only inside the xarray
 *                 calls, and every change is made under ksm_mutex;
 *                 __ksm_exit() reads xa_empty() under ksm_list_lock alone.
 *   An mm is only ever touched after mmget_not_zero(); __ksm_exit() frees
 *   the ksm_mm at once if it has no items and ksmd is not parked on it,
 *   otherwise ksmd reaps it when it finds mm_users at zero.
 */

#include <linux/cgroup.h>
#include <linux/debugfs.h>
#include <linux/errno.h>
#include <linux/freezer.h>
#include <linux/hash.h>
#include <linux/hashtable.h>
#include <linux/kthread.h>
#include <linux/ksm.h>
#include <linux/memcontrol.h>
#include <linux/memory.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/mmu_notifier.h>
#include <linux/oom.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/pagewalk.h>
#include <linux/random.h>
#include <linux/rmap.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/cputime.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/sysfs.h>
#include <linux/user_namespace.h>
#include <linux/wait.h>
#include <linux/xarray.h>
#include <linux/xxhash.h>
#include <asm/tlbflush.h>

#include "internal.h"

#define KSM_RUN_STOP	0
#define KSM_RUN_MERGE	1
#define KSM_RUN_UNMERGE	2

/* ------------------------------------------------------------------ */
/* Data structures                                                     */
/* ------------------------------------------------------------------ */

/**
 * struct ksm_key - what a page's content is indexed by
 * @hash: xxhash of the page, folded to 32 bits
 * @domain: the merge domain folded to 32 bits (domain_fold()): it picks
 *	the bucket and tells most other domains apart at once; a match is
 *	only a match if the full 64-bit domains are equal too
 */
struct ksm_key {
	u32 hash;
	u32 domain;
};

/**
 * struct ksm_mm - an mm registered for merging
 * @hash: entry in ksm_mm_hash, under ksm_list_lock
 * @link: entry in ksm_mm_list, under ksm_list_lock
 * @mm: the mm, pinned with mmgrab()
 * @items: ksm_items of this mm by virtual page number, under ksm_mutex;
 *	only the mm at the scan cursor gains or loses items
 * @domain: merge domain of the pages ksmd finds in this mm now, under
 *	ksm_mutex; recomputed at each page-table walk of the mm and before
 *	a page of it is paired, so that a process that moved to another
 *	cgroup takes its new domain within one batch of ksmd
 * @process_domain: the group under merge_domain=process, set at
 *	registration and shared with fork children; never changes
 */
struct ksm_mm {
	struct hlist_node hash;
	struct list_head link;
	struct mm_struct *mm;
	struct xarray items;
	u64 domain;
	u64 process_domain;
};

/*
 * Bits kept below PAGE_SHIFT in ksm_item.addr.  KI_STABLE and KI_UNSTABLE
 * select which member of the union is live; KI_PARITY is the parity of the
 * pass whose unstable index holds the item; the age counts passes in which
 * the page did not merge and the skip field is the smart-scan back-off.
 * KI_COUNTED shares KI_PARITY's bit and means something only in an item
 * in neither index: ksmd took the item out of the unstable index to look
 * at its page again (merge_scanned_page()) and it still counts in
 * pages_unshared until its page's fate is known (see item_uncount()).
 * KI_LINEAR, valid with KI_STABLE, says that the page's offset in its
 * anon_vma is its virtual page number (the VMA it was merged in has not
 * moved since it was made), so that an rmap walk can ask the anon_vma's
 * interval tree for the VMAs covering that one offset instead of visiting
 * all of them (see item_pgoff_range()).
 */
#define KI_STABLE	BIT(0)
#define KI_UNSTABLE	BIT(1)
#define KI_PARITY	BIT(2)
#define KI_COUNTED	BIT(2)
#define KI_AGE_SHIFT	3
#define KI_AGE_MASK	(0xfUL << KI_AGE_SHIFT)
#define KI_SKIP_SHIFT	7
#define KI_SKIP_MASK	(0xfUL << KI_SKIP_SHIFT)
#define KI_AGE_MAX	15
#define KI_LINEAR	BIT(11)

static_assert(KI_SKIP_SHIFT + 4 <= 11 && 11 < PAGE_SHIFT);

struct ksm_node;

/**
 * struct ksm_item - ksmd's memory of one virtual page (32 bytes on 64-bit)
 * @addr: user address, with the KI_* bits in the low bits
 * @owner: the ksm_mm this page belongs to
 * @anon_vma: (stable) the anon_vma of the VMA, referenced
 * @node: (stable) the KSM page this page is mapped to
 * @key: (unstable) key of the content when it was indexed
 * @next: (unstable) next item in the same unstable bucket
 */
struct ksm_item {
	unsigned long addr;
	struct ksm_mm *owner;
	union {
		struct {
			struct anon_vma *anon_vma;
			struct ksm_node *node;
		};
		struct {
			struct ksm_key key;
			struct ksm_item *next;
		};
	};
};

/**
 * struct ksm_node - one KSM page in the stable index
 * @hnode: entry in the stable index bucket
 * @dups: other KSM pages of the same content (a chain), or empty
 * @key: key of the content
 * @domain: merge domain of the page's mappers, or KSM_QUARANTINE once
 *	scrubbing found the page changed
 * @kpfn: pfn of the KSM page; changed by migration
 * @maps: array of the items that map the page through ksmd
 * @nr_maps: used entries of @maps
 * @max_maps: allocated entries of @maps
 *
 * All fields are under ksm_mutex; @maps and @nr_maps are in addition only
 * changed with the KSM page locked, so that rmap walkers holding the page
 * lock can read them.
 */
struct ksm_node {
	struct hlist_node hnode;
	struct list_head dups;
	struct ksm_key key;
	u64 domain;
	unsigned long kpfn;
	struct ksm_item **maps;
	unsigned int nr_maps;
	unsigned int max_maps;
};

/* Hash index of unstable items: singly linked buckets. */
struct ksm_utable {
	struct ksm_item **bucket;
	unsigned int bits;
	unsigned long count;
};

/* Hash index of stable nodes. */
struct ksm_stable {
	struct hlist_head *bucket;
	unsigned int bits;
	unsigned long count;
};

#define KSM_TABLE_MIN_BITS	10
#define KSM_TABLE_MAX_BITS	24

/* ------------------------------------------------------------------ */
/* Global state                                                        */
/* ------------------------------------------------------------------ */

/* Serialises ksmd against the sysfs knobs; see LOCKS above. */
static DEFINE_MUTEX(ksm_mutex);
/* Protects ksm_mm_list, ksm_mm_hash and ksm_cursor.slot. */
static DEFINE_SPINLOCK(ksm_list_lock);

static LIST_HEAD(ksm_mm_list);
static DEFINE_HASHTABLE(ksm_mm_hash, 9);

/*
 * Where ksmd is: @slot is the mm being scanned (NULL between passes),
 * @addr the first address not visited yet in it.  @slot is changed under
 * both ksm_mutex and ksm_list_lock, @addr only under ksm_mutex.
 */
static struct {
	struct ksm_mm *slot;
	unsigned long addr;
	unsigned long pass;
} ksm_cursor;

static struct ksm_utable ksm_unstable;		/* under ksm_mutex */
static struct ksm_stable ksm_stable;		/* under ksm_mutex */
static struct ksm_node *ksm_guess;		/* under ksm_mutex */
static unsigned int ksm_guess_misses;		/* under ksm_mutex */

static struct kmem_cache *ksm_item_cache;
static struct kmem_cache *ksm_node_cache;
static struct kmem_cache *ksm_mm_cache;

static DECLARE_WAIT_QUEUE_HEAD(ksm_thread_wait);	/* ksmd idles here */
static DECLARE_WAIT_QUEUE_HEAD(ksm_sleep_wait);	/* ksmd naps here */

/* Tunables (sysfs). */
static unsigned long ksm_run = KSM_RUN_STOP;
static unsigned int ksm_pages_to_scan = 100;
static unsigned int ksm_sleep_ms = 20;
static int ksm_max_sharing = 256;
static unsigned int ksm_chain_prune_ms = 2000;
static bool ksm_use_zero_pages __read_mostly;
static bool ksm_smart_scan = true;
#ifdef CONFIG_NUMA
static unsigned int ksm_across_nodes = 1;
#else
#define ksm_across_nodes 1U
#endif

/* Statistics, all under ksm_mutex (read locklessly by sysfs). */
static unsigned long ksm_pages_shared;	/* KSM pages with items */
static unsigned long ksm_pages_sharing;	/* further mappings of those */
static unsigned long ksm_pages_unshared;	/* items in the unstable index */
static unsigned long ksm_nr_items;		/* all ksm_items */
static unsigned long ksm_pages_scanned;
static unsigned long ksm_pages_skipped;
static unsigned long ksm_full_scans;
static unsigned long ksm_nr_chains;
static unsigned long ksm_nr_dups;

/* ------------------------------------------------------------------ */
/* Merge domains                                                       */
/* ------------------------------------------------------------------ */

/*
 * merge_domain: how the kernel's processes are split into domains whose
 * pages never merge with each other's.  A domain tag keeps the policy in
 * its top two bits, so that tags drawn under different policies never
 * collide, and an identifier of the group in the other 62: a cgroup's
 * 64-bit id (never reused while the system runs), a user namespace's
 * inode number (taken by no other namespace while any mm in it exists),
 * or a process domain from a 64-bit counter.  All ones is no group's: it
 * marks KSM pages that failed scrubbing (KSM_QUARANTINE).
 */
enum ksm_domain_policy {
	KSM_DOMAIN_GLOBAL,
	KSM_DOMAIN_CGROUP,
	KSM_DOMAIN_USER,
	KSM_DOMAIN_PROCESS,
};

static const char * const ksm_domain_names[] = {
	[KSM_DOMAIN_GLOBAL] = "global",
	[KSM_DOMAIN_CGROUP] = "cgroup",
	[KSM_DOMAIN_USER] = "user",
	[KSM_DOMAIN_PROCESS] = "process",
};

#define KSM_DOMAIN_SHIFT	62
#define KSM_DOMAIN_ID_MASK	(BIT_ULL(KSM_DOMAIN_SHIFT) - 1)
#define KSM_QUARANTINE		U64_MAX

/* Changed under ksm_mutex, and only while no KSM page exists. */
static enum ksm_domain_policy ksm_domain_policy;
/* May zero-filled pages map the zero page across domains? */
static bool ksm_zero_cross_domains;
/* The last process domain handed out. */
static atomic64_t ksm_process_domains = ATOMIC64_INIT(0);

/* Zero pages mapped by ksmd in place of zero-filled anon pages. */
atomic_long_t ksm_zero_pages = ATOMIC_LONG_INIT(0);

static u32 ksm_zero_hash __read_mostly;

/*
 * Seed of the content hash, chosen at random at boot.  xxhash is fast
 * but not a keyed hash: with a seed known to all, anyone can compute
 * pages of different content and equal hash, and fill one index bucket
 * with them.  With a secret seed that takes guessing 64 bits; the
 * lookups are bounded all the same (KSM_LOOKUP_MAX).
 */
static u64 ksm_hash_seed __read_mostly;

/*
 * Pages of another content but the same key that one lookup compares at
 * most.  Honest collisions of a 32-bit hash under a random seed are rare
 * enough that a few are never all in one bucket; without a bound, pages
 * made to collide would cost a full compare each, for each page looked
 * up: O(N^2) per pass, under ksm_mutex.
 */
#define KSM_LOOKUP_MAX	8

/* ------------------------------------------------------------------ */
/* Scan-time advisor                                                   */
/* ------------------------------------------------------------------ */

enum ksm_advisor_mode {
	KSM_ADVISOR_NONE,
	KSM_ADVISOR_SCAN_TIME,
};

static enum ksm_advisor_mode ksm_advisor;
static unsigned int ksm_advisor_max_cpu = 70;		/* percent */
static unsigned long ksm_advisor_min_pages = 500;
static unsigned long ksm_advisor_max_pages = 30000;
static unsigned long ksm_advisor_target_time = 200;	/* seconds */
#define KSM_ADVISOR_MIN_CPU	10	/* percent */
#define KSM_ADVISOR_SMOOTH	30	/* weight of the newest sample, % */

static struct {
	ktime_t pass_start;
	unsigned long last_secs;	/* duration of the previous pass */
	unsigned long trend;		/* smoothed pass-to-pass ratio, % */
	u64 cpu_ns;			/* ksmd runtime at the last pass end */
} ksm_adv;

static void advisor_reset(void)
{
	if (ksm_advisor == KSM_ADVISOR_SCAN_TIME) {
		memset(&ksm_adv, 0, sizeof(ksm_adv));
		ksm_pages_to_scan = ksm_advisor_min_pages;
	} else {
		ksm_pages_to_scan = 100;
	}
}

static void advisor_pass_begins(void)
{
	if (ksm_advisor == KSM_ADVISOR_SCAN_TIME)
		ksm_adv.pass_start = ktime_get();
}

/*
 * At the end of a pass, rescale pages_to_scan so that a pass would take
 * advisor_target_scan_time: the rate is multiplied by the ratio of the
 * measured to the target duration, then by a smoothed trend of how the
 * pass duration itself evolves.  The result is bounded so that ksmd uses
 * between KSM_ADVISOR_MIN_CPU and advisor_max_cpu percent of a CPU, and
 * by advisor_max_pages_to_scan.
 */
static void advisor_pass_ends(void)
{
	unsigned long secs, cpu_pct, ratio, trend, pages, per_pct;
	u64 now_ns, used_ms;

	if (ksm_advisor != KSM_ADVISOR_SCAN_TIME)
		return;

	secs = ktime_ms_delta(ktime_get(), ksm_adv.pass_start) / MSEC_PER_SEC;
	secs = max(secs, 1UL);

	now_ns = task_sched_runtime(current);
	used_ms = div_u64(now_ns - ksm_adv.cpu_ns, NSEC_PER_MSEC);
	cpu_pct = max_t(unsigned long, div_u64(used_ms * 100, secs * 1000), 1);

	/* How much faster than the target the last pass went, in %. */
	ratio = max(ksm_advisor_target_time * 100 / secs, 1UL);

	/* Pass duration relative to the one before, smoothed. */
	trend = secs * 100 / (ksm_adv.last_secs ? ksm_adv.last_secs : secs);
	trend = max(trend, 1UL);
	trend = ((100 - KSM_ADVISOR_SMOOTH) * ksm_adv.trend +
		 KSM_ADVISOR_SMOOTH * trend) / 100;

	pages = (unsigned long)ksm_pages_to_scan * 100 / ratio;
	pages = pages * trend / 100;

	per_pct = max((unsigned long)ksm_pages_to_scan / cpu_pct, 1UL);
	pages = min(pages, per_pct * ksm_advisor_max_cpu);
	pages = max(pages, per_pct * KSM_ADVISOR_MIN_CPU);
	pages = min(pages, ksm_advisor_max_pages);

	ksm_adv.trend = trend;
	ksm_adv.last_secs = secs;
	ksm_adv.cpu_ns = now_ns;
	WRITE_ONCE(ksm_pages_to_scan, pages);
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static inline unsigned long item_address(const struct ksm_item *item)
{
	return item->addr & PAGE_MASK;
}

/*
 * Called where @item's page gets mapped as a KSM page in @vma: remember
 * whether its offset in the anon_vma is its virtual page number.  A VMA
 * made by mmap() has vm_pgoff == vm_start >> PAGE_SHIFT, and splitting,
 * merging and fork keep the relation; mremap() breaks it, but moves no
 * KSM page along (it unmerges the range first), so the relation holds for
 * every VMA that can map this page through @item's anon_vma for as long
 * as the item is stable.
 */
static void item_note_linear(struct ksm_item *item, struct vm_area_struct *vma)
{
	unsigned long addr = item_address(item);

	if (linear_page_index(vma, addr) == addr >> PAGE_SHIFT)
		item->addr |= KI_LINEAR;
	else
		item->addr &= ~KI_LINEAR;
}

/*
 * The offsets an rmap walk of @item's anon_vma must visit: the one of its
 * page when known, else all (each VMA found is checked against the
 * address anyway).  With 20,000 VMAs of one process under one anon_vma,
 * the difference is 20,000 tree nodes per mapping walked.
 */
static void item_pgoff_range(const struct ksm_item *item, pgoff_t *first,
			     pgoff_t *last)
{
	if (item->addr & KI_LINEAR) {
		*first = item_address(item) >> PAGE_SHIFT;
		*last = *first;
	} else {
		*first = 0;
		*last = ULONG_MAX;
	}
}

/* @item will not be back in the unstable index: stop counting it. */
static void item_uncount(struct ksm_item *item)
{
	if (!(item->addr & (KI_STABLE | KI_UNSTABLE)) &&
	    (item->addr & KI_COUNTED)) {
		item->addr &= ~KI_COUNTED;
		ksm_pages_unshared--;
	}
}

static inline unsigned int item_age(const struct ksm_item *item)
{
	return (item->addr & KI_AGE_MASK) >> KI_AGE_SHIFT;
}

static inline void item_set_age(struct ksm_item *item, unsigned int age)
{
	item->addr = (item->addr & ~KI_AGE_MASK) |
		     ((unsigned long)age << KI_AGE_SHIFT);
}

static inline unsigned int item_skips(const struct ksm_item *item)
{
	return (item->addr & KI_SKIP_MASK) >> KI_SKIP_SHIFT;
}

static inline void item_set_skips(struct ksm_item *item, unsigned int n)
{
	item->addr = (item->addr & ~KI_SKIP_MASK) |
		     ((unsigned long)n << KI_SKIP_SHIFT);
}

static inline unsigned long pass_parity(void)
{
	return (ksm_cursor.pass & 1) ? KI_PARITY : 0;
}

static inline bool mm_exiting(struct mm_struct *mm)
{
	return atomic_read(&mm->mm_users) == 0;
}

static inline struct ksm_node *folio_ksm_node(struct folio *folio)
{
	return folio_test_ksm(folio) ? folio_raw_mapping(folio) : NULL;
}

static inline void folio_set_ksm_node(struct folio *folio,
				      struct ksm_node *node)
{
	VM_WARN_ON_FOLIO(folio_test_anon(folio) &&
			 PageAnonExclusive(&folio->page), folio);
	folio->mapping = (void *)((unsigned long)node | PAGE_MAPPING_KSM);
}

/*
 * The hash of a page that may still be written to (by its owner, or by
 * the kernel for it: read(2), O_DIRECT) is only a hint, which a merge
 * checks by a full compare once the page is write-protected: the race is
 * wanted, and data_race() tells KCSAN so.  A KSM page being scrubbed has
 * no writer, unless something is wrong, which the hash then shows.
 */
static u32 page_content_hash(struct page *page)
{
	void *p = kmap_local_page(page);
	/* The page may change under the hash: see above. */
	u64 h = data_race(xxhash(p, PAGE_SIZE, ksm_hash_seed));

	kunmap_local(p);
	return (u32)(h ^ (h >> 32));
}

/*
 * Whether two pages have the same content.  memcmp() orders bytes and
 * compares a word per step; equality needs neither, so compare 64 bytes
 * (a cache line) per step and test once per line: line_diff() is nonzero
 * if the lines at @p and @q differ.
 */
static __always_inline u64 line_diff(const u64 *p, const u64 *q)
{
	return (p[0] ^ q[0]) | (p[1] ^ q[1]) | (p[2] ^ q[2]) |
	       (p[3] ^ q[3]) | (p[4] ^ q[4]) | (p[5] ^ q[5]) |
	       (p[6] ^ q[6]) | (p[7] ^ q[7]);
}

static bool pages_equal(struct page *a, struct page *b)
{
	const u64 *p, *q;
	unsigned int i;
	u64 diff = 0;

	/*
	 * The architecture may have its own say on whether two pages are
	 * equal (arm64 refuses pages tagged by MTE): every merge, the zero
	 * page's included, is decided here, so ask it.
	 */
	if (IS_ENABLED(CONFIG_ARCH_HAS_MEMCMP_PAGES))
		return !memcmp_pages(a, b);

	p = kmap_local_page(a);
	q = kmap_local_page(b);

	for (i = 0; i < PAGE_SIZE / sizeof(u64) && !diff; i += 8)
		/* Either page may be written to: see page_content_hash(). */
		diff = data_race(line_diff(p + i, q + i));
	kunmap_local(q);
	kunmap_local(p);
	return !diff;
}

/* The merge domain of the pages of @item's mm (see slot_domain()). */
static inline u64 item_domain(const struct ksm_item *item)
{
	return item->owner->domain;
}

/* A new process domain; never the identifier reserved for quarantine. */
static u64 new_process_domain(void)
{
	u64 id;

	do {
		id = atomic64_inc_return(&ksm_process_domains) &
		     KSM_DOMAIN_ID_MASK;
	} while (!id || id == KSM_DOMAIN_ID_MASK);
	return id;
}

static u64 mm_cgroup_domain(struct mm_struct *mm)
{
	u64 id = 0;
#ifdef CONFIG_MEMCG
	struct mem_cgroup *memcg = get_mem_cgroup_from_mm(mm);

	if (memcg) {
		/* kernfs ids are not reused soon, unlike mem_cgroup_id() */
		id = cgroup_id(memcg->css.cgroup);
		css_put(&memcg->css);
	}
#endif
	return id;
}

/* The domain tag of group @id under @policy. */
static u64 domain_tag(enum ksm_domain_policy policy, u64 id)
{
	if (policy == KSM_DOMAIN_GLOBAL)
		return 0;
	id &= KSM_DOMAIN_ID_MASK;
	/* all ones is the quarantine, which no group may reach */
	if (id == KSM_DOMAIN_ID_MASK)
		id--;
	return (u64)policy << KSM_DOMAIN_SHIFT | id;
}

/* @domain as the 32 bits of a key. */
static inline u32 domain_fold(u64 domain)
{
	return (u32)(domain ^ (domain >> 32));
}

/*
 * The domain of the pages of @slot's mm under the current policy.  The
 * caller holds ksm_mutex; the slot's mmgrab() keeps what is read valid.
 */
static u64 slot_domain(struct ksm_mm *slot)
{
	struct mm_struct *mm = slot->mm;
	u64 id = 0;

	switch (ksm_domain_policy) {
	case KSM_DOMAIN_CGROUP:
		id = mm_cgroup_domain(mm);
		break;
	case KSM_DOMAIN_USER:
		id = mm->user_ns->ns.inum;
		break;
	case KSM_DOMAIN_PROCESS:
		id = slot->process_domain;
		break;
	default:
		break;
	}
	return domain_tag(ksm_domain_policy, id);
}

/* Does use_zero_pages apply to pages of @item's domain? */
static inline bool zero_page_allowed(const struct ksm_item *item)
{
	return ksm_use_zero_pages &&
	       (!item_domain(item) || ksm_zero_cross_domains);
}

static inline bool key_equal(struct ksm_key a, struct ksm_key b)
{
	return a.hash == b.hash && a.domain == b.domain;
}

static inline unsigned long key_slot(struct ksm_key k, unsigned int bits)
{
	return hash_32(k.hash ^ hash_32(k.domain, 32), bits);
}

/* The buckets of the two indexes where entries with key @k live. */
static inline struct hlist_head *stable_bucket(struct ksm_stable *t,
					       struct ksm_key k)
{
	return &t->bucket[key_slot(k, t->bits)];
}

static inline struct ksm_item **unstable_bucket(struct ksm_utable *t,
						struct ksm_key k)
{
	return &t->bucket[key_slot(k, t->bits)];
}

/*
 * VMAs whose pages are shared with others, are not ordinary struct pages,
 * or carry per-page architecture state: KSM ignores advice for them.  A
 * VMA is judged by its flags and the file it maps, so that a VMA not yet
 * made can be judged too (ksm_vma_flags()).
 */
static bool mergeable_flags_ok(const struct file *file, vm_flags_t flags)
{
	vm_flags_t refuse = VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO |
			    VM_DONTEXPAND | VM_HUGETLB | VM_MIXEDMAP |
			    VM_DROPPABLE;

#ifdef VM_SAO
	refuse |= VM_SAO;
#endif
#ifdef VM_SPARC_ADI
	refuse |= VM_SPARC_ADI;
#endif
	if (flags & refuse)
		return false;
	return !file || !IS_DAX(file->f_mapping->host);
}

static bool vma_mergeable_ok(struct vm_area_struct *vma)
{
	return mergeable_flags_ok(vma->vm_file, vma->vm_flags);
}

/* The VMA covering @addr if ksmd may still work there; mmap_lock held. */
static struct vm_area_struct *mergeable_vma_at(struct mm_struct *mm,
					       unsigned long addr)
{
	struct vm_area_struct *vma = NULL;

	if (!mm_exiting(mm))
		vma = vma_lookup(mm, addr);
	if (vma && (vma->vm_flags & VM_MERGEABLE) && vma->anon_vma)
		return vma;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Unmerging                                                           */
/* ------------------------------------------------------------------ */

/* Is the page mapped at @addr a KSM page or a KSM-placed zero page? */
static bool ksm_mapped_at(struct vm_area_struct *vma, unsigned long addr)
{
	struct folio_walk fw;
	struct folio *folio;
	bool ret = false;

	folio = folio_walk_start(&fw, vma, addr, FW_MIGRATION | FW_ZEROPAGE);
	if (!folio)
		return false;
	if (fw.level == FW_LEVEL_PTE && !folio_test_large(folio))
		ret = folio_test_ksm(folio) || ksm_pte_is_zero_page(fw.pte);
	folio_walk_end(&fw, vma);
	return ret;
}

/*
 * Give @addr a private copy of whatever KSM page it maps, by the same
 * unsharing fault GUP uses.  The fault may back off (e.g. on a racing PTE
 * update), so retry until no KSM page is mapped there any more.  Only
 * memory shortage is reported: SIGBUS/SIGSEGV mean the page went away.
 */
static int unshare_ksm_at(struct vm_area_struct *vma, unsigned long addr,
			  bool lock_vma)
{
	vm_fault_t ret;

	if (lock_vma)
		vma_start_write(vma);

	for (;;) {
		cond_resched();
		if (!ksm_mapped_at(vma, addr))
			return 0;
		ret = handle_mm_fault(vma, addr,
				      FAULT_FLAG_UNSHARE | FAULT_FLAG_REMOTE,
				      NULL);
		if (ret & VM_FAULT_OOM)
			return -ENOMEM;
		if (ret & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV))
			return 0;
	}
}

/* Does @pte, at @addr in @vma, map a KSM page (or one being migrated)? */
static bool pte_maps_ksm(struct vm_area_struct *vma, unsigned long addr,
			 pte_t pte)
{
	struct page *page;
	swp_entry_t entry;

	if (pte_present(pte)) {
		if (ksm_pte_is_zero_page(pte))
			return true;
		page = vm_normal_page(vma, addr, pte);
		return page && folio_test_ksm(page_folio(page));
	}
	if (pte_none(pte))
		return false;
	entry = pte_to_swp_entry(pte);
	return is_migration_entry(entry) &&
	       folio_test_ksm(pfn_swap_entry_folio(entry));
}

/*
 * The page tables under one PMD: stop at the first KSM mapping, its
 * address in *walk->private.  A PMD that maps no page table (none, a THP,
 * a migration entry) has no KSM page under it: pte_offset_map_lock()
 * says so.
 */
static int unshare_find_pmd(pmd_t *pmdp, unsigned long addr,
			    unsigned long end, struct mm_walk *walk)
{
	unsigned long *found = walk->private;
	pte_t *start, *ptep;
	spinlock_t *ptl;	/* page table lock */
	int ret = 0;

	start = pte_offset_map_lock(walk->mm, pmdp, addr, &ptl);
	if (!start)
		return 0;
	for (ptep = start; addr < end; ptep++, addr += PAGE_SIZE) {
		if (pte_maps_ksm(walk->vma, addr, ptep_get(ptep))) {
			*found = addr;
			ret = 1;
			break;
		}
	}
	pte_unmap_unlock(start, ptl);
	return ret;
}

static const struct mm_walk_ops unshare_find_ops = {
	.pmd_entry = unshare_find_pmd,
	.walk_lock = PGWALK_RDLOCK,
};

/*
 * Unshare every KSM page mapped in [@start, @end) of @vma.  A page-table
 * walk finds the next one, so that the holes of a huge sparse mapping
 * cost a look at the upper levels of the page tables, not one lookup per
 * page of address space (a 1 TiB mapping has 2^28 of them).
 */
static int unshare_ksm_range(struct vm_area_struct *vma, unsigned long start,
			     unsigned long end, bool lock_vma)
{
	unsigned long addr;
	int err;

	while (start < end) {
		if (mm_exiting(vma->vm_mm))
			break;
		if (signal_pending(current))
			return -ERESTARTSYS;
		if (walk_page_range_vma(vma, start, end, &unshare_find_ops,
					&addr) <= 0)
			break;
		err = unshare_ksm_at(vma, addr, lock_vma);
		if (err)
			return err;
		start = addr + PAGE_SIZE;
		cond_resched();
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Stable nodes                                                        */
/* ------------------------------------------------------------------ */

static void chain_join(struct ksm_node *node, struct ksm_node *group)
{
	if (list_empty(&group->dups)) {
		ksm_nr_chains++;
		ksm_nr_dups += 2;
	} else {
		ksm_nr_dups++;
	}
	list_add_tail(&node->dups, &group->dups);
}

static void chain_leave(struct ksm_node *node)
{
	if (list_empty(&node->dups))
		return;
	if (list_is_singular(&node->dups)) {
		ksm_nr_chains--;
		ksm_nr_dups -= 2;
	}  else {
		ksm_nr_dups--;
	}
	list_del_init(&node->dups);
}

static void stable_remove(struct ksm_stable *t, struct ksm_node *node)
{
	hlist_del(&node->hnode);
	t->count--;
}

/*
 * Forget a KSM page: its items fall back to the volatile state.  Either
 * the page is gone (the node is stale) or the caller holds it locked.
 */
static void node_free(struct ksm_node *node)
{
	unsigned int i;

	if (node->nr_maps) {
		ksm_pages_shared--;
		ksm_pages_sharing -= node->nr_maps - 1;
	}
	for (i = 0; i < node->nr_maps; i++) {
		struct ksm_item *item = node->maps[i];

		item->owner->mm->ksm_merging_pages--;
		put_anon_vma(item->anon_vma);
		item->anon_vma = NULL;
		item->node = NULL;
		item->addr &= ~KI_STABLE;
		cond_resched();
	}
	stable_remove(&ksm_stable, node);
	chain_leave(node);
	if (ksm_guess == node)
		ksm_guess = NULL;
	kfree(node->maps);
	kmem_cache_free(ksm_node_cache, node);
}

/*
 * Return the KSM page of @node with a reference held (and locked if
 * @lock), or NULL after freeing @node if its page is gone.
 *
 * The node holds no reference on its page.  It can trust the pfn only
 * while the page's ->mapping still points back to the node: freeing an
 * anon page clears ->mapping, and nothing else puts our tagged pointer
 * there.  A zero refcount normally means the page is being freed, but a
 * swap cache page may just be frozen by migration; and migration may also
 * have moved the node to a new pfn (folio_migrate_ksm() updates ->kpfn
 * before the old page's ->mapping goes stale), so look again before giving
 * up on the node.
 */
static struct folio *node_folio(struct ksm_node *node, bool lock)
{
	void *tag = (void *)((unsigned long)node | PAGE_MAPPING_KSM);
	struct folio *folio;
	unsigned long pfn;

retry:
	pfn = READ_ONCE(node->kpfn);
	folio = pfn_folio(pfn);
	if (READ_ONCE(folio->mapping) != tag)
		goto gone;

	for (;;) {
		if (folio_try_get(folio))
			break;
		if (!folio_test_swapcache(folio))
			goto gone;
		cpu_relax();
	}

	if (lock)
		folio_lock(folio);
	if (READ_ONCE(folio->mapping) == tag)
		return folio;
	if (lock)
		folio_unlock(folio);
	folio_put(folio);

gone:
	/* Order the ->mapping reads before ->kpfn: see folio_migrate_ksm(). */
	smp_rmb();
	if (READ_ONCE(node->kpfn) != pfn)
		goto retry;
	node_free(node);
	return NULL;
}

static void stable_grow(struct ksm_stable *t)
{
	unsigned int bits = t->bits + 2;
	struct hlist_head *nb;
	struct hlist_node *tmp;
	struct ksm_node *node;
	unsigned long i;

	if (bits > KSM_TABLE_MAX_BITS)
		return;
	nb = kvcalloc(1UL << bits, sizeof(*nb), GFP_KERNEL | __GFP_NOWARN);
	if (!nb)
		return;
	for (i = 0; i < (1UL << t->bits); i++) {
		hlist_for_each_entry_safe(node, tmp, &t->bucket[i], hnode) {
			hlist_del(&node->hnode);
			hlist_add_head(&node->hnode,
				       &nb[key_slot(node->key, bits)]);
		}
	}
	kvfree(t->bucket);
	t->bucket = nb;
	t->bits = bits;
}

static void stable_insert(struct ksm_stable *t, struct ksm_node *node)
{
	if (t->count >= (2UL << t->bits))
		stable_grow(t);
	hlist_add_head(&node->hnode, stable_bucket(t, node->key));
	t->count++;
}

/*
 * Make room in @node's array for @n more mappings, so that recording a
 * mapping never fails once the page table maps the KSM page: a mapping
 * without an item would be invisible to rmap_walk_ksm().  The caller
 * holds the KSM page locked, or @node is not published yet.
 */
static int node_reserve(struct ksm_node *node, unsigned int n)
{
	unsigned int want = node->nr_maps + n, size;
	struct ksm_item **maps;

	if (want <= node->max_maps)
		return 0;
	size = max3(4U, node->max_maps * 2, want);
	maps = krealloc_array(node->maps, size, sizeof(*maps), GFP_KERNEL);
	if (!maps)
		return -ENOMEM;
	node->maps = maps;
	node->max_maps = size;
	return 0;
}

/*
 * Add @item as a mapping of @node, in room node_reserve() made; its KSM
 * page is locked.
 */
static void node_add_item(struct ksm_node *node, struct ksm_item *item,
			  struct anon_vma *anon_vma)
{
	if (WARN_ON_ONCE(node->nr_maps >= node->max_maps))
		return;
	item_uncount(item);
	node->maps[node->nr_maps++] = item;
	item->anon_vma = anon_vma;
	item->node = node;
	item->addr |= KI_STABLE;
	item_set_age(item, 0);
	item_set_skips(item, 0);

	if (node->nr_maps == 1)
		ksm_pages_shared++;
	else
		ksm_pages_sharing++;
	item->owner->mm->ksm_merging_pages++;
}

/* ------------------------------------------------------------------ */
/* Unstable index                                                      */
/* ------------------------------------------------------------------ */

static void unstable_grow(struct ksm_utable *t)
{
	unsigned int bits = t->bits + 2;
	struct ksm_item **nb, *item, *next;
	unsigned long i, slot;

	if (bits > KSM_TABLE_MAX_BITS)
		return;
	nb = kvcalloc(1UL << bits, sizeof(*nb), GFP_KERNEL | __GFP_NOWARN);
	if (!nb)
		return;
	for (i = 0; i < (1UL << t->bits); i++) {
		for (item = t->bucket[i]; item; item = next) {
			next = item->next;
			slot = key_slot(item->key, bits);
			item->next = nb[slot];
			nb[slot] = item;
		}
	}
	kvfree(t->bucket);
	t->bucket = nb;
	t->bits = bits;
}

/*
 * Index @item under @key.  An item still counted in ksm_pages_unshared
 * (KI_COUNTED, see unstable_recheck()) is not counted again.
 */
static void unstable_insert(struct ksm_utable *t, struct ksm_item *item,
			    struct ksm_key key)
{
	bool counted = item->addr & KI_COUNTED;
	struct ksm_item **head;

	if (t->count >= (2UL << t->bits))
		unstable_grow(t);
	head = unstable_bucket(t, key);
	item->key = key;
	item->next = *head;
	*head = item;
	item->addr = (item->addr & ~KI_PARITY) | KI_UNSTABLE | pass_parity();
	t->count++;
	if (!counted)
		ksm_pages_unshared++;
}

/* Take @item out of the index, leaving ksm_pages_unshared alone. */
static void unstable_detach(struct ksm_utable *t, struct ksm_item *item)
{
	struct ksm_item **pp;

	/* Entries of the previous pass were dropped with its index. */
	if ((item->addr & KI_PARITY) == pass_parity()) {
		pp = unstable_bucket(t, item->key);
		while (*pp && *pp != item)
			pp = &(*pp)->next;
		if (!WARN_ON_ONCE(!*pp)) {
			*pp = item->next;
			t->count--;
		}
	}
	item->addr &= ~(KI_UNSTABLE | KI_PARITY);
}

static void unstable_remove(struct ksm_utable *t, struct ksm_item *item)
{
	unstable_detach(t, item);
	ksm_pages_unshared--;
}

/*
 * Take @item out of the index for ksmd to look at its page again, but
 * keep it in ksm_pages_unshared: most such items come back, and a reader
 * of pages_unshared or pages_volatile should not see each leave for the
 * length of a hash (on a workload that has stopped changing, both stay
 * still).  Ends with unstable_insert() or item_uncount().
 */
static void unstable_recheck(struct ksm_utable *t, struct ksm_item *item)
{
	unstable_detach(t, item);
	item->addr |= KI_COUNTED;
}

/*
 * A pass ended: start an empty unstable index for the next one.  Once
 * every page merged, the index empties itself as the pass goes: with no
 * entry left, there is nothing to clear.
 */
static void unstable_reset(struct ksm_utable *t)
{
	if (t->count)
		memset(t->bucket, 0, sizeof(*t->bucket) << t->bits);
	t->count = 0;
}

/* ------------------------------------------------------------------ */
/* Items                                                               */
/* ------------------------------------------------------------------ */

/* Take @item out of whichever index it is in. */
static void item_unlink(struct ksm_item *item)
{
	if (item->addr & KI_STABLE) {
		struct ksm_node *node = item->node;
		struct folio *folio;
		unsigned int i;

		folio = node_folio(node, true);
		if (!folio)
			return;		/* node_free() reset the item */

		for (i = 0; i < node->nr_maps; i++) {
			if (node->maps[i] == item) {
				node->maps[i] = node->maps[--node->nr_maps];
				break;
			}
		}
		folio_unlock(folio);
		folio_put(folio);

		if (node->nr_maps)
			ksm_pages_sharing--;
		else
			ksm_pages_shared--;
		item->owner->mm->ksm_merging_pages--;
		put_anon_vma(item->anon_vma);
		item->anon_vma = NULL;
		item->node = NULL;
		item->addr &= ~KI_STABLE;
	} else if (item->addr & KI_UNSTABLE) {
		unstable_remove(&ksm_unstable, item);
	}
}

/* Every item in a ksm_mm's xarray carries this mark: see items_drop(). */
#define KSM_ITEM_MARK	XA_MARK_0

/*
 * Get the item of @slot for @addr, making it if there is none.  @xas is
 * the caller's cursor in @slot's xarray, kept from one call to the next:
 * for the address after the last one, xas_next() steps to the next entry
 * instead of walking down from the root again, and a missing item is
 * stored where the lookup ended.  Only ksmd, under ksm_mutex, changes
 * the xarrays of items, so the cursor stays good between calls; whoever
 * erases entries (items_drop()) must xas_reset() it.
 */
static struct ksm_item *item_get(struct ksm_mm *slot, struct xa_state *xas,
				 unsigned long addr)
{
	unsigned long index = addr >> PAGE_SHIFT;
	struct ksm_item *item;

	rcu_read_lock();
	if (!xas_error(xas) && xas->xa_index + 1 == index) {
		item = xas_next(xas);
	} else {
		xas_set(xas, index);
		item = xas_load(xas);
	}
	rcu_read_unlock();
	if (item)
		return item;

	item = kmem_cache_zalloc(ksm_item_cache, GFP_KERNEL | __GFP_NOWARN);
	if (!item)
		return NULL;
	item->addr = addr;
	item->owner = slot;
	do {
		xas_lock(xas);
		xas_store(xas, item);
		if (!xas_error(xas))
			xas_set_mark(xas, KSM_ITEM_MARK);
		xas_unlock(xas);
	} while (xas_nomem(xas, GFP_KERNEL));
	if (xas_error(xas)) {
		kmem_cache_free(ksm_item_cache, item);
		xas_set(xas, index);	/* clears the error */
		return NULL;
	}
	ksm_nr_items++;
	slot->mm->ksm_rmap_items++;
	return item;
}

/*
 * Free the items of @slot for addresses in [@start, @end); returns
 * whether there were any.  ksmd asks this for every gap between two
 * pages it finds, and most gaps hold no item: the search goes by
 * KSM_ITEM_MARK, whose per-node bitmaps skip 64 empty slots at a time,
 * so that a gap of gigabytes in a sparse mapping costs a few steps
 * down the tree instead of a look at every slot on the way.
 */
static bool items_drop(struct ksm_mm *slot, unsigned long start,
		       unsigned long end)
{
	unsigned long index = start >> PAGE_SHIFT, last;
	struct ksm_item *item;
	bool dropped = false;

	if (start >= end)
		return false;
	last = (end - 1) >> PAGE_SHIFT;
	for (item = xa_find(&slot->items, &index, last, KSM_ITEM_MARK); item;
	     item = xa_find_after(&slot->items, &index, last, KSM_ITEM_MARK)) {
		xa_erase(&slot->items, index);
		item_unlink(item);
		kmem_cache_free(ksm_item_cache, item);
		ksm_nr_items--;
		slot->mm->ksm_rmap_items--;
		dropped = true;
		cond_resched();
	}
	return dropped;
}

/* ------------------------------------------------------------------ */
/* Merging                                                             */
/* ------------------------------------------------------------------ */

/* Pages ksmd looks at: anonymous (KSM included), not device memory. */
static bool ksm_candidate(struct page *page)
{
	struct folio *folio = page_folio(page);

	return !folio_is_zone_device(folio) && folio_test_anon(folio);
}

/* Get the anon page mapped at @item's address now, with a reference. */
static struct page *item_current_page(struct ksm_item *item)
{
	struct mm_struct *mm = item->owner->mm;
	unsigned long addr = item_address(item);
	struct vm_area_struct *vma;
	struct page *page = NULL;
	struct folio_walk fw;
	struct folio *folio;

	if (!mmget_not_zero(mm))
		return NULL;
	mmap_read_lock(mm);
	vma = mergeable_vma_at(mm, addr);
	folio = vma ? folio_walk_start(&fw, vma, addr, 0) : NULL;
	if (folio) {
		if (ksm_candidate(fw.page)) {
			page = fw.page;
			folio_get(folio);
		}
		folio_walk_end(&fw, vma);
	}
	if (page) {
		/* Cache-aliasing architectures: see the user's writes. */
		flush_anon_page(vma, page, addr);
		flush_dcache_page(page);
	}
	mmap_read_unlock(mm);
	mmput(mm);
	return page;
}

/*
 * Lock the folio of @page for a merge, without waiting for the lock (come
 * back to this page next pass): it must be anonymous and not a KSM page
 * yet, and a large folio is split first.  Returns the locked small folio
 * of @page, or NULL.
 */
static struct folio *lock_merge_folio(struct page *page)
{
	struct folio *folio = page_folio(page);

	if (!folio_test_anon(folio) || folio_test_ksm(folio) ||
	    !folio_trylock(folio))
		return NULL;
	if (folio_test_large(folio)) {
		/* Zero-filled subpages are merged as use_zero_pages says. */
		if (split_huge_page_keep_zero_subpages(page)) {
			unlock_page(page);
			return NULL;
		}
		folio = page_folio(page);
	}
	return folio;
}

/*
 * Split the large folio of @page, which the caller holds the only extra
 * reference on, without waiting for its lock; returns whether it did.
 */
static bool split_large_folio(struct page *page)
{
	int err;

	if (!folio_trylock(page_folio(page)))
		return false;
	err = split_huge_page_keep_zero_subpages(page);
	unlock_page(page);
	return !err;
}

/*
 * The VMA at @item's address, if ksmd may still merge there, with the
 * item's mm pinned and its mmap lock held for reading; NULL, with nothing
 * held, if not.  item_vma_end() lets go of both.
 */
static struct vm_area_struct *item_vma_begin(struct ksm_item *item)
{
	struct mm_struct *mm = item->owner->mm;
	struct vm_area_struct *vma;

	if (!mmget_not_zero(mm))
		return NULL;
	mmap_read_lock(mm);
	vma = mergeable_vma_at(mm, item_address(item));
	if (!vma) {
		mmap_read_unlock(mm);
		mmput(mm);
	}
	return vma;
}

static void item_vma_end(struct vm_area_struct *vma)
{
	struct mm_struct *mm = vma->vm_mm;

	mmap_read_unlock(mm);
	mmput(mm);
}

/* A reference on @vma's anon_vma, for @item's entry in a node. */
static struct anon_vma *item_anon_vma(struct ksm_item *item,
				      struct vm_area_struct *vma)
{
	item_note_linear(item, vma);
	get_anon_vma(vma->anon_vma);
	return vma->anon_vma;
}

/*
 * A page in a per-CPU LRU batch holds the batch's reference too, which
 * folio_wrprotect_one() and replace_anon_page_pte() take for a pin
 * (-EBUSY).  Draining the batches interrupts every CPU that has one, so
 * ksmd drains at the start of a pass only when the pass before met such a
 * refusal or memory became mergeable since (memory_became_mergeable()):
 * a pass over pages that are merged or unique already leaves the other
 * CPUs to their work (ksm_tests -C writes to merged pages beside such
 * passes).  Set by ksmd and, without ksm_mutex, by madvise and prctl;
 * cleared by ksmd as it drains.
 */
static bool ksm_drain_due = true;

/* Pass @err through, taking note of a refusal that a drain may cure. */
static int note_busy(int err)
{
	if (err == -EBUSY)
		WRITE_ONCE(ksm_drain_due, true);
	return err;
}

/*
 * Make @item's address map the KSM page @kpage instead of @page, which the
 * caller found there and holds a reference on.  On success *@avp receives
 * a reference on the anon_vma of the VMA.  Returns 0, -EAGAIN if @page's
 * content is not @kpage's, another error if @page cannot merge.
 */
static int map_onto_ksm_page(struct ksm_item *item, struct page *page,
			     struct page *kpage, struct anon_vma **avp)
{
	struct vm_area_struct *vma = item_vma_begin(item);
	struct folio *folio;
	int err = -EFAULT;

	if (!vma)
		return -EFAULT;
	folio = lock_merge_folio(page);
	if (folio) {
		/* One page-table round: clear, count, compare, map @kpage. */
		err = note_busy(replace_anon_page_pte(vma, page, kpage,
						      pages_equal));
		folio_unlock(folio);
		if (!err)
			*avp = item_anon_vma(item, vma);
	}
	item_vma_end(vma);
	return err;
}

/*
 * @item's address maps a KSM page already, inherited over fork or made
 * from this very page: only the anon_vma it is mapped through is wanted
 * (*@avp, referenced).  Returns 0, or -EFAULT if the VMA has gone.
 */
static int attach_mapped_ksm_page(struct ksm_item *item,
				  struct anon_vma **avp)
{
	struct vm_area_struct *vma = item_vma_begin(item);

	if (!vma)
		return -EFAULT;
	*avp = item_anon_vma(item, vma);
	item_vma_end(vma);
	return 0;
}

/*
 * Map @kpage at @item's address in place of @page, found there: through
 * map_onto_ksm_page(), or, if they are one page (a fork child's mapping of
 * a page that has just become a KSM page, or of one it inherited), by
 * attach_mapped_ksm_page().
 */
static int map_ksm_mapping(struct ksm_item *item, struct page *page,
			   struct page *kpage, struct anon_vma **avp)
{
	if (page == kpage)
		return attach_mapped_ksm_page(item, avp);
	return map_onto_ksm_page(item, page, kpage, avp);
}

/*
 * Replace @page, a zero-filled page at @item's address, by the shared zero
 * page.  No anon_vma is taken: zero pages have no node.  Returns 0, or why
 * not.
 */
static int map_zero_page(struct ksm_item *item, struct page *page)
{
	struct vm_area_struct *vma = item_vma_begin(item);
	struct mm_struct *mm;
	struct folio *folio;
	int err = -EFAULT;

	if (!vma)
		return -EFAULT;
	mm = vma->vm_mm;
	folio = lock_merge_folio(page);
	if (folio) {
		/*
		 * Count a zero page under the mmap lock, which keeps fork()
		 * out, and before the PTE is there: a write fault may replace
		 * it at once, and takes one off the count when it does.
		 */
		atomic_long_inc(&mm->ksm_zero_pages);
		atomic_long_inc(&ksm_zero_pages);
		err = replace_anon_page_pte(vma, page,
					    ZERO_PAGE(item_address(item)),
					    pages_equal);
		note_busy(err);
		if (err) {
			atomic_long_dec(&mm->ksm_zero_pages);
			atomic_long_dec(&ksm_zero_pages);
		}
		folio_unlock(folio);
	}
	item_vma_end(vma);
	return err;
}

/*
 * Turn @page, mapped at @item's address, into the KSM page of the new
 * @node in place: its PTE there is made read-only (which fails if the
 * page may be pinned), and in the same hold of the page lock it gets
 * @node, which enters the stable index with @item as its first mapping.
 * So the page is never a KSM page without a node that lists a mapping:
 * rmap walks find every mapping of it from then on, those a fork child
 * shares included, and lookups find it, whatever becomes of the merge
 * that made it.  @node must have room for its mappings reserved.
 * Returns 0, or why @page cannot become a KSM page.
 */
static int make_ksm_page(struct ksm_item *item, struct page *page,
			 struct ksm_node *node)
{
	struct vm_area_struct *vma = item_vma_begin(item);
	struct folio *folio;
	int err = -EFAULT;
	pte_t pte;

	if (!vma)
		return -EFAULT;
	folio = lock_merge_folio(page);
	if (!folio)
		goto out;
	err = note_busy(folio_wrprotect_one(folio, vma, &pte));
	if (!err) {
		/*
		 * Read-only and verified unpinned: index the content it has
		 * now, which scrubbing checks against.
		 */
		node->key.hash = page_content_hash(page);
		node->kpfn = folio_pfn(folio);
		folio_set_ksm_node(folio, node);
		node_add_item(node, item, item_anon_vma(item, vma));
		stable_insert(&ksm_stable, node);
		folio_mark_accessed(folio);
		/* Reclaim must write it to swap, not drop it. */
		if (!folio_test_dirty(folio))
			folio_set_dirty(folio);
	}
	folio_unlock(folio);
out:
	item_vma_end(vma);
	return err;
}

/* Replace a zero-filled page by the shared zero page (map_zero_page()). */
static bool merge_with_zero_page(struct ksm_item *item, struct page *page)
{
	return !map_zero_page(item, page);
}

static int node_room(struct ksm_node *node);

/*
 * Look up the stable index for a KSM page with @page's content that can
 * take one more mapping.  If the content is there but every copy is full,
 * return NULL and point *@full at one of the copies.
 *
 * Unless @verify, the first KSM page with @page's key is taken to have its
 * content without comparing: the merge compares anyway, once @page can no
 * longer change, and a stable page's content does not change.  Only if
 * that comparison fails (a key shared by two contents, or @page changed
 * since it was hashed) does the caller look again with @verify set.
 */
static struct folio *stable_find(struct page *page, struct ksm_key key,
				 u64 domain, bool verify, struct ksm_node **full)
{
	int nid = page_to_nid(page);
	unsigned int compares = 0;
	struct hlist_node *tmp;
	struct ksm_node *node, *dup;
	struct folio *kfolio, *dfolio;
	struct hlist_head *head;
	bool room;

	*full = NULL;
	head = stable_bucket(&ksm_stable, key);
	hlist_for_each_entry_safe(node, tmp, head, hnode) {
		if (!key_equal(node->key, key) || node->domain != domain)
			continue;
		kfolio = node_folio(node, false);
		if (!kfolio)
			continue;
		if (!ksm_across_nodes && folio_nid(kfolio) != nid)
			goto next;
		/*
		 * A node with room may be taken on its key alone (the merge
		 * compares), but a full one only once compared: a full node
		 * of another content under this key must not keep @page from
		 * the node that has its content.
		 */
		room = node_room(node) > 0;
		if (verify || !room) {
			if (++compares > KSM_LOOKUP_MAX) {
				folio_put(kfolio);
				break;
			}
			if (!pages_equal(page, &kfolio->page))
				goto next;
		}
		if (room)
			return kfolio;
		folio_put(kfolio);

		/*
		 * Same content, but full: try the other copies, the ones
		 * that joined last first, as the older ones fill up first.
		 */
		list_for_each_entry_reverse(dup, &node->dups, dups) {
			if (node_room(dup) <= 0)
				continue;
			/* A stale dup cannot be freed inside this loop. */
			dfolio = pfn_folio(READ_ONCE(dup->kpfn));
			if (!folio_try_get(dfolio))
				continue;
			if (folio_ksm_node(dfolio) == dup &&
			    (ksm_across_nodes || folio_nid(dfolio) == nid))
				return dfolio;
			folio_put(dfolio);
		}
		*full = node;
		return NULL;
next:
		folio_put(kfolio);
	}
	return NULL;
}

/*
 * Merge @page into @kfolio, a KSM page the caller has found (by a lookup in
 * the stable index, stable_lookup_merge(), or otherwise) and holds a
 * reference on.  Return 0 on success, -EAGAIN if their content differs,
 * another error if @page cannot merge.
 */
static int merge_into_ksm_folio(struct ksm_item *item, struct page *page,
				struct folio *kfolio)
{
	struct anon_vma *av;
	struct ksm_node *node;
	int err;

	/* The caller's reference keeps @kfolio a KSM page of this node. */
	folio_lock(kfolio);
	node = folio_ksm_node(kfolio);
	err = node ? node_reserve(node, 1) : -EFAULT;
	folio_unlock(kfolio);
	if (err)
		return err;

	err = map_ksm_mapping(item, page, &kfolio->page, &av);
	if (err)
		return err;

	folio_lock(kfolio);
	node_add_item(node, item, av);
	folio_unlock(kfolio);
	ksm_guess = node;
	ksm_guess_misses = 0;
	return 0;
}

/*
 * Whether @page may have @kpage's content, from a look at three of its
 * cache lines (first, middle, last): cheap enough to try before the guess.
 */
static bool lines_equal(struct page *page, struct page *kpage)
{
	static const unsigned int line[] = {
		0, PAGE_SIZE / 2, PAGE_SIZE - 64
	};
	const u64 *p = kmap_local_page(page), *q = kmap_local_page(kpage);
	unsigned int i, w;
	u64 diff = 0;

	for (i = 0; i < ARRAY_SIZE(line) && !diff; i++) {
		w = line[i] / sizeof(u64);
		/* @page may be written to: see page_content_hash(). */
		diff = data_race(line_diff(p + w, q + w));
	}
	kunmap_local(q);
	kunmap_local(p);
	return !diff;
}

/*
 * Merge @page into a KSM page of its content, if the stable index has one
 * with room; see stable_find() for *@full.  Returns 0 when merged,
 * -ENOENT when there is no such KSM page, or why @page did not merge
 * into the one there is.
 */
static int stable_lookup_merge(struct ksm_item *item, struct page *page,
			       struct ksm_key key, struct ksm_node **full)
{
	bool verify = false;
	struct folio *kfolio;
	int err;

again:
	kfolio = stable_find(page, key, item_domain(item), verify, full);
	if (!kfolio)
		return -ENOENT;
	err = merge_into_ksm_folio(item, page, kfolio);
	folio_put(kfolio);
	if (err == -EAGAIN && !verify) {
		/* Not that content after all: compare with each candidate. */
		verify = true;
		goto again;
	}
	return err;
}

/*
 * Find in the unstable index another page with @page's content, and
 * return its item with a reference on that page in *@opage.
 */
static struct ksm_item *unstable_find(struct ksm_item *item,
				      struct page *page, struct ksm_key key,
				      struct page **opage)
{
	unsigned int tries = 0;
	struct ksm_item *other;
	struct page *op;

	for (other = *unstable_bucket(&ksm_unstable, key); other;
	     other = other->next) {
		if (other == item || !key_equal(other->key, key))
			continue;
		if (++tries > KSM_LOOKUP_MAX)
			break;
		/*
		 * The key is the domain of @other's mm when it was indexed;
		 * the mm may have moved to another cgroup since.
		 */
		other->owner->domain = slot_domain(other->owner);
		if (item_domain(other) != item_domain(item))
			continue;
		op = item_current_page(other);
		if (!op)
			continue;
		if (op == page || folio_test_ksm(page_folio(op)) ||
		    (!ksm_across_nodes && page_to_nid(op) != page_to_nid(page)) ||
		    !pages_equal(page, op)) {
			put_page(op);
			continue;
		}
		*opage = op;
		return other;
	}
	return NULL;
}

/*
 * @node, the new KSM page @page, was made because @group, a KSM page of
 * the same content, was full: link it to @group's chain, if @group is
 * still there with that content.
 */
static void chain_add_dup(struct ksm_node *node, struct ksm_node *group,
			  struct page *page)
{
	struct folio *gfolio;

	if (group == node)
		return;
	gfolio = node_folio(group, false);
	if (gfolio) {
		if (pages_equal(&gfolio->page, page))
			chain_join(node, group);
		folio_put(gfolio);
	}
}

/*
 * Merge two ordinary pages with (so far) equal content: @page becomes a
 * KSM page in place, then @opage's mapping is switched over to it if the
 * two compare equal once neither can change (replace_anon_page_pte()).
 * @group, if not NULL, is a full KSM page with this content, which the new
 * one joins as a duplicate.  Returns whether @page became a KSM page.
 *
 * If @opage cannot be switched over (a passing reference, or it changed),
 * @page stays a KSM page with one mapping.  It is not turned back: a
 * fork child may share it, which ksmd could not reach to undo it, and
 * the next page of this content finds it in the stable index anyway.
 */
static bool merge_pair(struct ksm_item *item, struct page *page,
		       struct ksm_item *other, struct page *opage,
		       struct ksm_key key, struct ksm_node *group)
{
	struct anon_vma *av;
	struct folio *kfolio;
	struct ksm_node *node;

	node = kmem_cache_zalloc(ksm_node_cache, GFP_KERNEL | __GFP_NOWARN);
	if (!node)
		return false;
	INIT_LIST_HEAD(&node->dups);
	node->key = key;
	node->domain = item_domain(item);
	if (node_reserve(node, 2) || make_ksm_page(item, page, node)) {
		kfree(node->maps);
		kmem_cache_free(ksm_node_cache, node);
		return false;
	}
	ksm_guess = node;
	ksm_guess_misses = 0;
	if (group)
		chain_add_dup(node, group, page);

	if (map_ksm_mapping(other, opage, page, &av))
		return true;
	/* Both mappings are in place; keep the other out of the index. */
	unstable_remove(&ksm_unstable, other);
	kfolio = page_folio(page);
	folio_lock(kfolio);
	node_add_item(node, other, av);
	folio_unlock(kfolio);
	return true;
}

/* Back-off of smart scan: passes to skip after @age idle passes. */
static unsigned int skip_backoff(unsigned int age)
{
	/* Ages 0-3: 1 pass, 4-5: 2 passes, 6-8: 4 passes, older: 8. */
	static const u8 passes[] = { 1, 1, 1, 1, 2, 2, 4, 4, 4 };

	return age < ARRAY_SIZE(passes) ? passes[age] : 8;
}

/*
 * Memory that just became mergeable may hold the partner that the pages
 * smart scan backs off from never had: until the pass after next, no page
 * is skipped.  Written without ksm_mutex (by madvise and prctl), read
 * under it.
 */
static unsigned long ksm_smart_pause;

static void smart_scan_pause(void)
{
	WRITE_ONCE(ksm_smart_pause, READ_ONCE(ksm_cursor.pass) + 2);
}

/*
 * Smart scan: a page that failed to merge in several passes in a row is
 * looked at less and less often, the back-off growing with its age.
 */
static bool smart_skip(struct ksm_item *item, struct page *page)
{
	unsigned int age, skips;

	if (!ksm_smart_scan || PageKsm(page) ||
	    ksm_cursor.pass <= READ_ONCE(ksm_smart_pause))
		return false;

	age = item_age(item);
	if (age < KI_AGE_MAX)
		item_set_age(item, age + 1);
	if (age < 3)
		return false;

	skips = item_skips(item);
	if (!skips) {
		item_set_skips(item, skip_backoff(age));
		return false;
	}
	item_set_skips(item, skips - 1);
	ksm_pages_skipped++;
	item_unlink(item);
	return true;
}

/*
 * Merge the page ksmd found at @item's address by its content, without a
 * guess: hash it, look in the stable index, then in the unstable one.
 * Returns whether the item went (back) into the unstable index.
 */
static bool merge_by_hash(struct ksm_item *item, struct page *page)
{
	struct folio *folio = page_folio(page);
	struct ksm_node *node = NULL, *full;
	struct ksm_item *other;
	struct folio *kfolio;
	struct page *opage;
	struct ksm_key key;

	if (folio_test_ksm(folio)) {
		node = folio_ksm_node(folio);
		if ((item->addr & KI_STABLE) && item->node == node)
			return false;	/* still merged where we left it */
	}
	item_unlink(item);

	if (node) {
		/* A KSM page arrived here by fork(): take note of it. */
		kfolio = node_folio(node, false);
		if (kfolio) {
			if (kfolio == folio)
				merge_into_ksm_folio(item, page, kfolio);
			folio_put(kfolio);
		}
		return false;
	}
	if (folio_test_ksm(folio))
		return false;	/* being set up: leave it alone */

	key.hash = page_content_hash(page);
	key.domain = domain_fold(item_domain(item));

	if (zero_page_allowed(item) && key.hash == ksm_zero_hash &&
	    merge_with_zero_page(item, page))
		return false;

	/*
	 * A KSM page with room has this content, but @page could not join
	 * it now (most often a passing extra reference: -EBUSY).  Keep it
	 * out of the unstable index, or the next page of this content
	 * would pair with it and make a second KSM page beside the first,
	 * for good; it tries again next pass.
	 */
	if (stable_lookup_merge(item, page, key, &full) != -ENOENT)
		return false;

	other = unstable_find(item, page, key, &opage);
	if (other && folio_test_large(folio) && page_folio(opage) == folio) {
		/*
		 * Equal pages of one large folio: the split that their merge
		 * needs would fail on the reference held on the other one.
		 * Split without it, and look again.
		 */
		put_page(opage);
		other = NULL;
		if (split_large_folio(page))
			other = unstable_find(item, page, key, &opage);
	}
	if (other) {
		bool merged = merge_pair(item, page, other, opage, key, full);

		put_page(opage);
		if (merged)
			return false;
	}
	unstable_insert(&ksm_unstable, item, key);
	return true;
}

/* ------------------------------------------------------------------ */
/* Guessing                                                            */
/* ------------------------------------------------------------------ */

/*
 * Most pages that merge could be told where to before they are hashed.
 * Pages of equal content come in runs (zero-filled or patterned buffers),
 * so the KSM page the last merge went to, ksm_guess, is one guess.  And
 * processes that share content tend to share its layout too (forked
 * workers, VMs booted from one image): the KSM page that the mm scanned
 * just before maps at the same address is the other.  A guess is checked
 * with a look at three cache lines, and the merge compares the whole page
 * anyway, once it cannot change; when the guess is right, the page needs
 * no hash and no lookup.  After KSM_GUESS_MISSES refuted looks in a row
 * (content without runs), ksm_guess is dropped until the next merge.
 *
 * The pages that pass the look are not merged one by one: those of one
 * page table, within KSM_RUN_MAX pages of the first, are collected in
 * ksm_guess_run and merged together by guess_run_merge(), with one mmap
 * lock, one page-table round and one TLB flush for all of them, then
 * freed as a batch.  The run holds a reference on each page and on each
 * KSM page it means to map, and its items are in no index meanwhile.  It
 * is merged when a page does not fit in it, before each page-table walk
 * and at the end of each batch, so it never outlives ksm_mutex.  Pages
 * that do not join it are merged meanwhile as usual; they only have to
 * leave room in each KSM page for the pages of the run (node_room()).
 */
#define KSM_GUESS_MISSES	8
#define KSM_RUN_MAX		REPLACE_ANON_PTES_MAX

static struct ksm_guess_run {
	struct ksm_mm *slot;		/* the mm of the pages */
	unsigned long start;		/* address of the first page */
	unsigned int nr;		/* pages in the run */
	struct {
		struct ksm_item *item;
		struct page *page;	/* referenced */
		struct folio *kfolio;	/* the KSM page to map, referenced */
		struct ksm_node *node;	/* and its node */
		unsigned int pte;	/* PTEs after the first page's */
	} e[KSM_RUN_MAX];
} ksm_guess_run;			/* under ksm_mutex */

/*
 * Whether @node may take another mapping, the guess run's pending ones
 * counted: > 0 if so (a lower bound of how many more).
 */
static int node_room(struct ksm_node *node)
{
	struct ksm_guess_run *r = &ksm_guess_run;
	int room = ksm_max_sharing - (int)node->nr_maps;
	unsigned int i;

	if (room > (int)r->nr)
		return room - r->nr;	/* whatever the run maps */
	for (i = 0; i < r->nr && room > 0; i++)
		room -= r->e[i].node == node;
	return room;
}

/*
 * Make room in each KSM page's node for the mappings the run means to add
 * to it.  Pages of a node that cannot have it are left out of the run
 * (their node cleared), and merged the usual way.
 */
static void guess_run_reserve(struct ksm_guess_run *r)
{
	unsigned int i, k, need;
	struct ksm_node *node;
	struct folio *kfolio;
	bool ok;

	for (i = 0; i < r->nr; i++) {
		node = r->e[i].node;
		for (k = 0; k < i && r->e[k].node != node; k++)
			;
		if (k < i || !node)
			continue;	/* done with its first page */
		for (need = 0, k = i; k < r->nr; k++)
			need += r->e[k].node == node;
		kfolio = r->e[i].kfolio;
		folio_lock(kfolio);
		ok = folio_ksm_node(kfolio) == node && !node_reserve(node, need);
		folio_unlock(kfolio);
		for (k = i; !ok && k < r->nr; k++)
			if (r->e[k].node == node)
				r->e[k].node = NULL;
	}
}

/*
 * Map each page of run @r's KSM page; @ret receives each page's result
 * (see replace_anon_ptes()), *@avp the anon_vma, with one reference for
 * each page merged.  Returns how many merged.
 */
static unsigned int guess_run_map(struct ksm_guess_run *r, int *ret,
				  struct anon_vma **avp)
{
	struct page *old[KSM_RUN_MAX] = {}, *new[KSM_RUN_MAX];
	unsigned int i, n, span = r->e[r->nr - 1].pte + 1, done = 0;
	struct mm_struct *mm = r->slot->mm;
	int res[KSM_RUN_MAX];
	struct vm_area_struct *vma;
	struct folio *folio;

	for (i = 0; i < r->nr; i++)
		ret[i] = -EFAULT;
	if (!mmget_not_zero(mm))
		return 0;
	mmap_read_lock(mm);
	vma = mergeable_vma_at(mm, r->start);
	if (!vma || vma->vm_end < r->start + span * PAGE_SIZE)
		goto out;
	/* Never wait for a page lock: come back to such a page next pass. */
	for (i = 0; i < r->nr; i++) {
		n = r->e[i].pte;
		folio = page_folio(r->e[i].page);
		new[n] = &r->e[i].kfolio->page;
		if (r->e[i].node && folio_test_anon(folio) && !folio_test_ksm(folio) &&
		    !folio_test_large(folio) && folio_trylock(folio))
			old[n] = r->e[i].page;
	}
	done = replace_anon_ptes(vma, r->start, old, span, new, pages_equal,
				 res);
	for (i = 0; i < r->nr; i++) {
		n = r->e[i].pte;
		if (!old[n])
			continue;
		folio_unlock(page_folio(old[n]));
		ret[i] = note_busy(res[n]);
		if (!ret[i])
			*avp = item_anon_vma(r->e[i].item, vma);
	}
out:
	mmap_read_unlock(mm);
	mmput(mm);
	return done;
}

/*
 * Merge the pages of the guess run, and free those merged as a batch.  A
 * page that did not merge goes the way of any other page (hashed, looked
 * up, indexed), without a guess.
 */
static void guess_run_merge(void)
{
	struct ksm_guess_run *r = &ksm_guess_run;
	struct anon_vma *av = NULL;
	unsigned int i, nr = r->nr;
	struct ksm_node *node;
	struct folio_batch fb;
	int ret[KSM_RUN_MAX];
	bool bad = false;

	if (!nr)
		return;
	guess_run_reserve(r);
	guess_run_map(r, ret, &av);
	r->nr = 0;

	for (i = 0; i < nr; i++) {
		struct folio *kfolio = r->e[i].kfolio;

		if (!ret[i]) {
			node = r->e[i].node;
			folio_lock(kfolio);
			node_add_item(node, r->e[i].item, av);
			folio_unlock(kfolio);
			ksm_guess = node;
			ksm_guess_misses = 0;
		} else if (ret[i] == -EAGAIN && r->e[i].node == ksm_guess) {
			bad = true;
		}
		folio_put(kfolio);
	}
	if (bad)
		ksm_guess = NULL;	/* a bad guess after all: stop it */

	folio_batch_init(&fb);
	for (i = 0; i < nr; i++) {
		struct ksm_item *item = r->e[i].item;
		struct page *page = r->e[i].page;

		/* A page back in the unstable index stays counted. */
		if (!ret[i] || !merge_by_hash(item, page))
			item_uncount(item);
		if (!folio_batch_add(&fb, page_folio(page)))
			folios_put(&fb);
	}
	if (folio_batch_count(&fb))
		folios_put(&fb);
}

/*
 * The item at @item's address in the mm ksmd scanned before @item's, if
 * there is one; ksm_mutex keeps the item found alive, and ksm_list_lock
 * the ksm_mm it is looked up in.
 */
static struct ksm_item *sibling_item(struct ksm_item *item)
{
	struct ksm_mm *slot = item->owner, *prev;
	struct ksm_item *sib = NULL;

	spin_lock(&ksm_list_lock);
	if (!list_is_first(&slot->link, &ksm_mm_list)) {
		prev = list_prev_entry(slot, link);
		sib = xa_load(&prev->items, item->addr >> PAGE_SHIFT);
	}
	spin_unlock(&ksm_list_lock);
	return sib;
}

/*
 * Whether @node is worth trying for @page of @item: same domain, room, not
 * the zero-page stand-in; returns its KSM page, referenced, if @page looks
 * like it.
 */
static struct folio *guess_check(struct ksm_item *item, struct page *page,
				 struct ksm_node *node)
{
	struct ksm_guess_run *r = &ksm_guess_run;
	struct folio *kfolio;

	if (!node || node->domain != item_domain(item) ||
	    node_room(node) <= 0 ||
	    (zero_page_allowed(item) && node->key.hash == ksm_zero_hash))
		return NULL;
	kfolio = node_folio(node, false);
	if (!kfolio)
		return NULL;
	if (!ksm_across_nodes && folio_nid(kfolio) != page_to_nid(page))
		goto no;
	/*
	 * The page right after one that joins the run for this KSM page
	 * is taken without a look: the compare in the run decides, and a
	 * page that fails it costs no more than one the look refuted.
	 */
	if (r->nr && r->e[r->nr - 1].node == node &&
	    item_address(r->e[r->nr - 1].item) + PAGE_SIZE == item_address(item))
		return kfolio;
	if (lines_equal(page, &kfolio->page))
		return kfolio;
no:
	folio_put(kfolio);
	return NULL;
}

/*
 * Whether @page at @item's address looks like a guess; if so, it joins
 * the guess run, which takes over the caller's reference on @page.
 * Otherwise the caller merges @page itself.
 */
static bool guess_take(struct ksm_item *item, struct page *page)
{
	struct ksm_guess_run *r = &ksm_guess_run;
	unsigned long addr = item_address(item);
	struct folio *folio = page_folio(page);
	struct ksm_node *node = NULL;
	struct folio *kfolio = NULL;
	struct ksm_item *sib;

	if (folio_test_ksm(folio) || folio_test_large(folio))
		return false;
	if (r->nr && (r->slot != item->owner ||
		      addr >= r->start + KSM_RUN_MAX * PAGE_SIZE ||
		      (addr & PMD_MASK) != (r->start & PMD_MASK)))
		guess_run_merge();

	/*
	 * Where the previous mm has a page that did not merge, this one
	 * most likely will not join a run either: leave ksm_guess alone.
	 */
	sib = sibling_item(item);
	if (sib && (sib->addr & KI_STABLE)) {
		node = sib->node;
		kfolio = guess_check(item, page, node);
	}
	if (!kfolio && (!sib || (sib->addr & KI_STABLE)) && ksm_guess &&
	    ksm_guess != node) {
		node = ksm_guess;
		kfolio = guess_check(item, page, node);
		if (!kfolio && ++ksm_guess_misses >= KSM_GUESS_MISSES)
			ksm_guess = NULL;
	}
	if (!kfolio)
		return false;

	item_unlink(item);
	if (!r->nr) {
		r->slot = item->owner;
		r->start = addr;
	}
	r->e[r->nr].item = item;
	r->e[r->nr].page = page;
	r->e[r->nr].kfolio = kfolio;
	r->e[r->nr].node = node;
	r->e[r->nr].pte = (addr - r->start) >> PAGE_SHIFT;
	r->nr++;
	return true;
}

/*
 * The scanner's way in for the page ksmd found at @item's address: the
 * guesses first (guess_take()), then merge_by_hash().  Returns true if
 * the guess run took over the reference on @page.
 */
static bool merge_scanned_page(struct ksm_item *item, struct page *page)
{
	if (item->addr & KI_UNSTABLE)
		unstable_recheck(&ksm_unstable, item);
	if (guess_take(item, page))
		return true;
	if (!merge_by_hash(item, page))
		item_uncount(item);
	return false;
}

/* ------------------------------------------------------------------ */
/* The scanner                                                         */
/* ------------------------------------------------------------------ */

/*
 * Pages found by one page-table walk, in address order, each with a
 * reference; ksm_next_page() hands them out one by one.  Walking once for
 * a run of pages, instead of once per page, saves taking the mmap lock and
 * descending the page tables for every page.  Only used under ksm_mutex,
 * and empty between batches (ksm_found_drop()), so that ksmd never holds
 * references on user pages while it sleeps.
 *
 * A page that is still the KSM page its item was merged into is checked
 * by the walk itself, under the page table lock, and recorded without a
 * page or a reference: there is nothing more to do for it this pass
 * (merge_by_hash() would return at once), and once most pages are merged,
 * most pages are like that.
 */
#define KSM_FOUND_MAX	32

static struct ksm_found {
	struct page *page[KSM_FOUND_MAX];
	unsigned long addr[KSM_FOUND_MAX];
	unsigned int nr;	/* pages found */
	unsigned int next;	/* next one to hand out */
	unsigned int want;	/* how many the walk may collect */
	struct xa_state xas;	/* item_get()'s cursor in the mm's items */
	struct xa_state wxas;	/* the walk's cursor in them */
} ksm_found;

/*
 * Add @page at @addr to @f, or with @page NULL, the address of a page
 * that needs nothing; false when @f is full and the walk must stop.
 */
static bool found_add(struct ksm_found *f, struct page *page,
		      unsigned long addr)
{
	if (page)
		folio_get(page_folio(page));
	f->page[f->nr] = page;
	f->addr[f->nr++] = addr;
	return f->nr < f->want;
}

/*
 * Whether the KSM page @folio, mapped at @addr, is the one the item of
 * @addr was merged into.  ksm_mutex keeps the items as they are.
 */
static bool found_still_merged(struct ksm_found *f, struct folio *folio,
			       unsigned long addr)
{
	unsigned long index = addr >> PAGE_SHIFT;
	struct ksm_item *item;

	rcu_read_lock();
	if (!xas_error(&f->wxas) && f->wxas.xa_index + 1 == index) {
		item = xas_next(&f->wxas);
	} else {
		xas_set(&f->wxas, index);
		item = xas_load(&f->wxas);
	}
	rcu_read_unlock();
	return item && (item->addr & KI_STABLE) &&
	       item->node == folio_ksm_node(folio);
}

/*
 * Page-walk callback: collect the anonymous pages of this PMD.  A page of
 * a large folio is only ever collected alone: splitting it would fail on
 * the references held for its other pages.
 */
static int ksm_find_in_pmd(pmd_t *pmdp, unsigned long addr,
			   unsigned long end, struct mm_walk *walk)
{
	struct ksm_found *f = walk->private;
	struct vm_area_struct *vma = walk->vma;
	struct page *page;
	pte_t *start, *ptep;
	spinlock_t *ptl;	/* page table lock */
	int ret = 0;
	pmd_t pmd;

	cond_resched();
	pmd = pmdp_get_lockless(pmdp);
	if (!pmd_present(pmd))
		return 0;

	if (IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE) && pmd_leaf(pmd)) {
		ptl = pmd_lock(walk->mm, pmdp);
		pmd = pmdp_get(pmdp);
		if (pmd_present(pmd) && pmd_leaf(pmd)) {
			page = vm_normal_page_pmd(vma, addr, pmd);
			if (page && ksm_candidate(page)) {
				ret = 1;
				if (!f->nr)
					found_add(f, page + ((addr & ~PMD_MASK) >>
							     PAGE_SHIFT), addr);
			}
			spin_unlock(ptl);
			return ret;
		}
		spin_unlock(ptl);
	}

	start = pte_offset_map_lock(walk->mm, pmdp, addr, &ptl);
	if (!start)
		return 0;
	for (ptep = start; addr < end; ptep++, addr += PAGE_SIZE) {
		pte_t pte = ptep_get(ptep);

		if (!pte_present(pte))
			continue;
		page = vm_normal_page(vma, addr, pte);
		if (!page || !ksm_candidate(page))
			continue;
		if (folio_test_large(page_folio(page))) {
			ret = 1;
			if (!f->nr)
				found_add(f, page, addr);
			break;
		}
		if (folio_test_ksm(page_folio(page)) &&
		    found_still_merged(f, page_folio(page), addr))
			page = NULL;
		if (!found_add(f, page, addr)) {
			ret = 1;
			break;
		}
	}
	pte_unmap_unlock(start, ptl);
	return ret;
}

/* Give back what the last walk found and ksmd did not look at. */
static void ksm_found_drop(void)
{
	struct ksm_found *f = &ksm_found;

	if (f->next < f->nr)
		ksm_cursor.addr = f->addr[f->next];	/* revisit those */
	for (; f->next < f->nr; f->next++)
		if (f->page[f->next])
			put_page(f->page[f->next]);
	f->nr = 0;
	f->next = 0;
}

static const struct mm_walk_ops ksm_find_ops = {
	.pmd_entry = ksm_find_in_pmd,
	.walk_lock = PGWALK_RDLOCK,
};

static struct ksm_mm *slot_lookup(struct mm_struct *mm)
{
	struct ksm_mm *slot;

	hash_for_each_possible(ksm_mm_hash, slot, hash, (unsigned long)mm)
		if (slot->mm == mm)
			return slot;
	return NULL;
}

/*
 * Move the cursor past @slot; forget @slot too if its mm has exited.
 * Returns true when this ended a pass.
 */
static bool cursor_advance(struct ksm_mm *slot)
{
	struct ksm_mm *reap = NULL;
	bool pass_done = false;

	spin_lock(&ksm_list_lock);
	if (list_is_last(&slot->link, &ksm_mm_list)) {
		ksm_cursor.slot = NULL;
		pass_done = true;
	} else {
		ksm_cursor.slot = list_next_entry(slot, link);
	}
	ksm_cursor.addr = 0;
	if (mm_exiting(slot->mm) && xa_empty(&slot->items)) {
		hash_del(&slot->hash);
		list_del(&slot->link);
		reap = slot;
	}
	spin_unlock(&ksm_list_lock);

	if (reap) {
		clear_bit(MMF_VM_MERGEABLE, &reap->mm->flags);
		mmdrop(reap->mm);
		xa_destroy(&reap->items);
		kmem_cache_free(ksm_mm_cache, reap);
	}
	if (pass_done) {
		advisor_pass_ends();
		unstable_reset(&ksm_unstable);
		WRITE_ONCE(ksm_cursor.pass, ksm_cursor.pass + 1);
		ksm_full_scans++;
	}
	return pass_done;
}

/*
 * Hand out the next page found by the last walk, with its item (both NULL
 * for a page still merged); false when none is left.  The cursor follows,
 * and the items of addresses skipped over (no page there any more) are
 * freed.
 */
static bool ksm_found_next(struct ksm_mm *slot, struct ksm_item **itemp,
			   struct page **pagep)
{
	struct ksm_found *f = &ksm_found;
	struct ksm_item *item;
	unsigned long addr;
	struct page *page;

	while (f->next < f->nr) {
		page = f->page[f->next];
		addr = f->addr[f->next++];
		if (items_drop(slot, ksm_cursor.addr, addr))
			xas_reset(&f->xas);
		ksm_cursor.addr = addr + PAGE_SIZE;

		if (!page) {		/* still merged: nothing to do */
			*itemp = NULL;
			*pagep = NULL;
			return true;
		}
		item = item_get(slot, &f->xas, addr);
		if (!item || smart_skip(item, page)) {
			put_page(page);
			continue;
		}
		*itemp = item;
		*pagep = page;
		return true;
	}
	f->nr = 0;
	f->next = 0;
	return false;
}

/*
 * Find the next page to look at, with a reference, and its item; walk
 * the page tables for at most @want more pages if none is left from the
 * last walk.  Both are NULL for a page the walk found still merged (see
 * struct ksm_found).  Returns false at the end of a pass or when there is
 * nothing to scan.
 */
static bool ksm_next_page(struct ksm_item **itemp, struct page **pagep,
			  unsigned int want)
{
	struct ksm_found *f = &ksm_found;
	struct vm_area_struct *vma;
	struct mm_struct *mm;
	struct ksm_mm *slot;

	if (ksm_cursor.slot && ksm_found_next(ksm_cursor.slot, itemp, pagep))
		return true;
	/* The run must not outlive its walk: see ksm_guess_run. */
	guess_run_merge();
next_mm:
	if (!ksm_cursor.slot) {
		if (list_empty_careful(&ksm_mm_list))
			return false;
		/* See ksm_drain_due. */
		if (READ_ONCE(ksm_drain_due)) {
			WRITE_ONCE(ksm_drain_due, false);
			lru_add_drain_all();
		}
		advisor_pass_begins();
	}

	spin_lock(&ksm_list_lock);
	if (!ksm_cursor.slot) {
		if (list_empty(&ksm_mm_list)) {
			spin_unlock(&ksm_list_lock);
			return false;
		}
		ksm_cursor.slot = list_first_entry(&ksm_mm_list,
						   struct ksm_mm, link);
		ksm_cursor.addr = 0;
	}
	slot = ksm_cursor.slot;
	spin_unlock(&ksm_list_lock);

	/* While the cursor is on @slot, __ksm_exit() leaves it to us. */
	mm = slot->mm;
	if (!mmget_not_zero(mm)) {
		items_drop(slot, 0, ULONG_MAX);
		if (cursor_advance(slot))
			return false;
		goto next_mm;
	}

	/* The process may have moved to another cgroup meanwhile. */
	slot->domain = slot_domain(slot);

	f->want = clamp(want, 1U, (unsigned int)KSM_FOUND_MAX);
	f->wxas = (struct xa_state)__XA_STATE(&slot->items, 0, 0, 0);
	mmap_read_lock(mm);
	{
		VMA_ITERATOR(vmi, mm, ksm_cursor.addr);

		for_each_vma(vmi, vma) {
			unsigned long from = max(ksm_cursor.addr,
						 vma->vm_start);

			if (!(vma->vm_flags & VM_MERGEABLE) || !vma->anon_vma)
				continue;
			if (mm_exiting(mm))
				break;
			if (from < vma->vm_end)
				walk_page_range_vma(vma, from, vma->vm_end,
						    &ksm_find_ops, f);
			if (f->nr)
				break;
			/* Nothing (more) here. */
			if (items_drop(slot, ksm_cursor.addr, vma->vm_end))
				xas_reset(&f->wxas);
			ksm_cursor.addr = vma->vm_end;
		}
	}
	mmap_read_unlock(mm);
	mmput(mm);

	if (f->nr) {
		f->xas = (struct xa_state)__XA_STATE(&slot->items, 0, 0, 0);
		if (ksm_found_next(slot, itemp, pagep))
			return true;
		goto next_mm;	/* all skipped: walk on from the cursor */
	}
	/* Nothing more in this mm: forget what lies beyond the cursor. */
	items_drop(slot, ksm_cursor.addr, ULONG_MAX);
	if (cursor_advance(slot))
		return false;
	goto next_mm;
}

/*
 * Look at the KSM pages that are in chains or have no items left, and free
 * the nodes of those that are gone: nothing else would look them up, and
 * they would keep the chain counters up.  stable_prune_if_due() does this
 * every stable_node_chains_prune_millisecs.
 */
static void stable_prune_all(void)
{
	struct hlist_node *tmp;
	struct ksm_node *node;
	struct folio *folio;
	unsigned long i;

	for (i = 0; i < (1UL << ksm_stable.bits); i++) {
		hlist_for_each_entry_safe(node, tmp, &ksm_stable.bucket[i],
					  hnode) {
			if (node->nr_maps && list_empty(&node->dups))
				continue;
			folio = node_folio(node, false);
			if (folio)
				folio_put(folio);
		}
		cond_resched();
	}
}

static void stable_prune_if_due(void)
{
	static unsigned long last;

	if (time_before(jiffies, last +
			msecs_to_jiffies(READ_ONCE(ksm_chain_prune_ms))))
		return;
	last = jiffies;
	stable_prune_all();
}

/* ------------------------------------------------------------------ */
/* Scrubbing KSM pages                                                 */
/* ------------------------------------------------------------------ */

/*
 * One KSM page stands in for many copies, so a bit flipped in it (a
 * memory fault, a stray DMA, a kernel bug) corrupts every process that
 * maps it.  Each batch, ksmd re-hashes a few KSM pages, going round the
 * stable index bucket by bucket, and compares each with the hash it was
 * indexed by when it was made read-only.  A page that changed is taken
 * out of use and handed to memory_failure(), so that its mappers get
 * SIGBUS when they touch it instead of reading wrong data.
 */
static unsigned int ksm_scrub_batch = 2;	/* pages per batch; 0: off */
static unsigned long ksm_scrub_bucket;		/* bucket being looked at */
/*
 * Nodes of that bucket already looked at.  A bucket can hold hundreds
 * (the KSM pages of one chain share a key), so a batch may stop in the
 * middle of one; the next batch skips this many from the head.  A node
 * added or removed meanwhile shifts the count by one: one node is
 * looked at twice or waits for the next round, which is fine for a
 * pace, and cheaper than pinning a position in the list.
 */
static unsigned int ksm_scrub_pos;
static unsigned long ksm_pages_scrubbed;
static unsigned long ksm_scrub_failures;
#define KSM_SCRUB_MAX_BUCKETS	256		/* looked at per batch */

/*
 * Take @node out of use: it leaves its chain and moves to the quarantine
 * domain, which no lookup ever matches.  Its mappings stay until
 * memory_failure() takes them down.
 */
static void node_quarantine(struct ksm_node *node)
{
	chain_leave(node);
	node->domain = KSM_QUARANTINE;
}

/*
 * Re-hash up to @budget KSM pages.  Returns one that no longer matches
 * its hash, quarantined and with a reference held, or NULL.
 */
static struct folio *ksm_scrub(unsigned int budget)
{
	unsigned long nr = 1UL << ksm_stable.bits, visited;
	struct hlist_node *tmp;
	struct ksm_node *node;
	struct folio *folio;
	unsigned int pos;
	u32 hash;

	for (visited = 0; budget && visited < min(nr, KSM_SCRUB_MAX_BUCKETS);
	     visited++) {
		if (ksm_scrub_bucket >= nr) {
			ksm_scrub_bucket = 0;
			ksm_scrub_pos = 0;
		}
		pos = 0;
		hlist_for_each_entry_safe(node, tmp,
					  &ksm_stable.bucket[ksm_scrub_bucket],
					  hnode) {
			if (pos++ < ksm_scrub_pos)
				continue;
			if (!budget) {
				/* come back to this node next batch */
				ksm_scrub_pos = pos - 1;
				return NULL;
			}
			if (node->domain == KSM_QUARANTINE)
				continue;
			folio = node_folio(node, false);
			if (!folio)
				continue;
			hash = page_content_hash(&folio->page);
			ksm_pages_scrubbed++;
			if (unlikely(hash != node->key.hash)) {
				pr_err("ksm: KSM page at pfn %#lx (%u mappings) changed after merging (hash %08x, was %08x): taking it out of use\n",
				       folio_pfn(folio), node->nr_maps, hash,
				       node->key.hash);
				ksm_scrub_failures++;
				node_quarantine(node);
				return folio;
			}
			folio_put(folio);
			budget--;
		}
		ksm_scrub_bucket++;
		ksm_scrub_pos = 0;
	}
	return NULL;
}

/*
 * Poison a KSM page that failed scrubbing, so that no mapping of it is
 * read again: each mapper gets SIGBUS when it touches the page, as for an
 * uncorrectable memory error.  ksm_mutex is not held; the caller's
 * reference is consumed.
 *
 * memory_failure() does not always unmap: it leaves the mappings of a
 * folio that is off the LRU at that moment (in a per-CPU LRU batch, or
 * isolated by migration), and it may fail to unmap.  So look again once
 * it is done, and unmap what is left with hwpoison entries.  With
 * vm.memory_failure_recovery=0 memory_failure() would panic: a checksum
 * mismatch may be a software bug as well as a failing cell, and is not
 * worth the machine, so the page stays quarantined and mapped, and the
 * log says so.  Without CONFIG_MEMORY_FAILURE there are no hwpoison
 * entries: the same holds.
 */
static void ksm_scrub_poison(struct folio *folio)
{
	unsigned long pfn = folio_pfn(folio);
	bool mapped;
	int err;

	if (!memory_failure_recovers()) {
		pr_err("ksm: pfn %#lx stays mapped: memory failure recovery is off\n",
		       pfn);
		folio_put(folio);
		return;
	}
	/* A folio in a per-CPU LRU batch is not on the LRU yet. */
	lru_add_drain_all();
	folio_get(folio);		/* memory_failure() takes the other */
	err = memory_failure(pfn, MF_COUNT_INCREASED);
	if (err)
		pr_err("ksm: memory_failure() on pfn %#lx: %d\n", pfn, err);

	folio_lock(folio);
	if (folio_mapped(folio) && folio_test_hwpoison(folio))
		try_to_unmap(folio, TTU_HWPOISON);
	mapped = folio_mapped(folio);
	folio_unlock(folio);
	folio_put(folio);
	if (mapped)
		pr_err("ksm: pfn %#lx is still mapped after poisoning\n", pfn);
}

/* One batch of ksmd; returns a KSM page to poison, or NULL. */
static struct folio *ksm_scan_batch(unsigned int budget)
{
	unsigned int want = budget;
	struct ksm_item *item;
	struct page *page;

	stable_prune_if_due();
	while (budget) {
		cond_resched();
		if (unlikely(freezing(current)))
			break;
		if (!ksm_next_page(&item, &page, budget))
			break;
		if (page && !merge_scanned_page(item, page))
			put_page(page);
		ksm_pages_scanned++;
		budget--;
	}
	guess_run_merge();
	ksm_found_drop();
	/* Scrub as the scan goes: not in a batch that found no page. */
	if (budget == want)
		return NULL;
	return ksm_scrub(READ_ONCE(ksm_scrub_batch));
}

static bool ksmd_has_work(void)
{
	return (READ_ONCE(ksm_run) & KSM_RUN_MERGE) &&
	       !list_empty_careful(&ksm_mm_list);
}

/* A changed sleep_millisecs cuts the current nap short. */
static bool ksmd_nap_over(unsigned int ms)
{
	return ms != READ_ONCE(ksm_sleep_ms) || kthread_should_stop();
}

static bool ksmd_wake_up(void)
{
	return ksmd_has_work() || kthread_should_stop();
}

/*
 * After the batch that ends a pass, ksmd sleeps at least this long, even
 * at sleep_millisecs=0.  Without it a pass over a few pages follows the
 * last one within microseconds, so ksmd spins (draining every CPU's LRU
 * batches whenever that is due), and a pass is nearly always in
 * progress: a program that writes to a merged page as soon as it sees
 * full_scans go up, then waits for the next full scan, may get one that
 * looked at its page before the write (the kernel's own ksm_tests -U
 * does just that).
 */
#define KSM_PASS_REST_MS	5

static int ksmd_fn(void *unused)
{
	unsigned int ms;
	bool rest;

	set_freezable();
	set_user_nice(current, 5);

	while (!kthread_should_stop()) {
		struct folio *bad = NULL;

		rest = false;
		mutex_lock(&ksm_mutex);
		if (ksmd_has_work()) {
			bad = ksm_scan_batch(READ_ONCE(ksm_pages_to_scan));
			rest = !ksm_cursor.slot;	/* a pass ended */
		}
		mutex_unlock(&ksm_mutex);
		if (bad)
			ksm_scrub_poison(bad);

		if (ksmd_has_work()) {
			unsigned long nap;

			ms = READ_ONCE(ksm_sleep_ms);
			nap = msecs_to_jiffies(rest ? max(ms, KSM_PASS_REST_MS) :
					       ms);
			wait_event_freezable_timeout(ksm_sleep_wait,
						     ksmd_nap_over(ms), nap);
		} else {
			wait_event_freezable(ksm_thread_wait, ksmd_wake_up());
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Hooks called by the rest of mm                                      */
/* ------------------------------------------------------------------ */

/* Put @mm on ksmd's list unless it is there already. */
static int ksm_register_mm(struct mm_struct *mm)
{
	return test_bit(MMF_VM_MERGEABLE, &mm->flags) ? 0 : __ksm_enter(mm);
}

static void vma_make_mergeable(struct vm_area_struct *vma)
{
	if (!(vma->vm_flags & VM_MERGEABLE) && vma_mergeable_ok(vma))
		vm_flags_set(vma, VM_MERGEABLE);
}

static int vma_make_unmergeable(struct vm_area_struct *vma)
{
	int err = 0;

	if (vma->vm_flags & VM_MERGEABLE) {
		/* Without an anon_vma it cannot map a KSM page yet. */
		if (vma->anon_vma)
			err = unshare_ksm_range(vma, vma->vm_start,
						vma->vm_end, true);
		if (!err)
			vm_flags_clear(vma, VM_MERGEABLE);
	}
	return err;
}

/**
 * ksm_add_vma - Mark a new VMA mergeable if its process asked for it.
 * @vma: The VMA being created.
 *
 * With PR_SET_MEMORY_MERGE in effect, every compatible VMA of the process
 * is mergeable, including the ones created later.
 */
void ksm_add_vma(struct vm_area_struct *vma)
{
	if (!test_bit(MMF_VM_MERGE_ANY, &vma->vm_mm->flags))
		return;
	/*
	 * ksm_vma_flags() judged the flags asked for; a driver's ->mmap()
	 * may have added some that rule merging out.
	 */
	if ((vma->vm_flags & VM_MERGEABLE) && !vma_mergeable_ok(vma))
		vm_flags_clear(vma, VM_MERGEABLE);
	vma_make_mergeable(vma);
	/* ksmd may have dropped an mm it found without any work. */
	ksm_register_mm(vma->vm_mm);
}

/**
 * ksm_vma_flags - Flags for a new VMA of a process that merges everything.
 * @mm: The mm the VMA is for.
 * @file: The file it is to map, or NULL.
 * @vm_flags: The flags it is to have.
 *
 * mmap() and brk() ask before they look for a neighbour to merge the new
 * range into: a VMA that becomes mergeable only after it was made never
 * merges with its mergeable neighbours, and under PR_SET_MEMORY_MERGE
 * each brk() would leave a VMA of its own.
 *
 * Return: @vm_flags, plus VM_MERGEABLE if PR_SET_MEMORY_MERGE is in effect
 * for @mm and such a VMA may hold KSM pages.
 */
vm_flags_t ksm_vma_flags(struct mm_struct *mm, const struct file *file,
			 vm_flags_t vm_flags)
{
	if (test_bit(MMF_VM_MERGE_ANY, &mm->flags) &&
	    mergeable_flags_ok(file, vm_flags))
		vm_flags |= VM_MERGEABLE;
	return vm_flags;
}

/**
 * ksm_process_mergeable - Whether any VMA of @mm is mergeable.
 * @mm: The mm, with its mmap lock held.
 *
 * Return: true if ksmd may find pages to merge in @mm.
 */
bool ksm_process_mergeable(struct mm_struct *mm)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, 0);

	mmap_assert_locked(mm);
	for_each_vma(vmi, vma) {
		if (vma->vm_flags & VM_MERGEABLE)
			return true;
	}
	return false;
}

/*
 * Memory just became mergeable (madvise, prctl): its pages may sit in LRU
 * batches, which the next pass drains (ksm_drain_due), and smart scan
 * holds back (smart_scan_pause()).
 */
static void memory_became_mergeable(void)
{
	WRITE_ONCE(ksm_drain_due, true);
	smart_scan_pause();
}

/**
 * ksm_enable_merge_any - Merge all compatible VMAs of @mm (PR_SET_MEMORY_MERGE).
 * @mm: The mm, with its mmap lock held for writing.
 *
 * Return: 0 or -ENOMEM.
 */
int ksm_enable_merge_any(struct mm_struct *mm)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, 0);
	int err;

	if (test_bit(MMF_VM_MERGE_ANY, &mm->flags))
		return 0;
	err = ksm_register_mm(mm);
	if (err)
		return err;
	set_bit(MMF_VM_MERGE_ANY, &mm->flags);
	for_each_vma(vmi, vma)
		vma_make_mergeable(vma);
	memory_became_mergeable();
	return 0;
}

static int ksm_unmerge_all_vmas(struct mm_struct *mm)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, 0);
	int err;

	for_each_vma(vmi, vma) {
		err = vma_make_unmergeable(vma);
		if (err)
			return err;
	}
	return 0;
}

/**
 * ksm_disable_merge_any - Undo ksm_enable_merge_any().
 * @mm: The mm, with its mmap lock held for writing.
 *
 * Every KSM page of every VMA is unshared and the VMAs lose VM_MERGEABLE,
 * as MADV_UNMERGEABLE would do.  If that fails, all compatible VMAs are
 * left mergeable as before.
 *
 * Return: 0, -ENOMEM, or -ERESTARTSYS if a signal is pending.
 */
int ksm_disable_merge_any(struct mm_struct *mm)
{
	struct vm_area_struct *vma;
	int err;

	if (!test_and_clear_bit(MMF_VM_MERGE_ANY, &mm->flags))
		return 0;
	err = ksm_unmerge_all_vmas(mm);
	if (err) {
		VMA_ITERATOR(vmi, mm, 0);

		/* Roll back: the process keeps merging everything. */
		set_bit(MMF_VM_MERGE_ANY, &mm->flags);
		for_each_vma(vmi, vma)
			vma_make_mergeable(vma);
	}
	return err;
}

/**
 * ksm_disable - Stop all merging in @mm and unshare its KSM pages.
 * @mm: The mm, with its mmap lock held for writing.
 *
 * Return: 0 or a negative error from unsharing.
 */
int ksm_disable(struct mm_struct *mm)
{
	mmap_assert_write_locked(mm);

	/* Without registration there cannot be any KSM page. */
	if (!test_bit(MMF_VM_MERGEABLE, &mm->flags))
		return 0;
	return test_bit(MMF_VM_MERGE_ANY, &mm->flags) ?
		ksm_disable_merge_any(mm) : ksm_unmerge_all_vmas(mm);
}

/**
 * ksm_madvise - Handle MADV_MERGEABLE and MADV_UNMERGEABLE for one VMA.
 * @vma: The VMA.
 * @start: Start of the range within @vma.
 * @end: End of the range within @vma.
 * @advice: MADV_MERGEABLE or MADV_UNMERGEABLE.
 * @vm_flags: The flags @vma will get; updated here.
 *
 * Advice for VMAs KSM cannot handle is ignored.  Unmerging unshares every
 * KSM page of the range before VM_MERGEABLE is dropped.
 *
 * Return: 0, -ENOMEM, or -ERESTARTSYS if a signal is pending.
 */
int ksm_madvise(struct vm_area_struct *vma, unsigned long start,
		unsigned long end, int advice, unsigned long *vm_flags)
{
	int err = 0;

	switch (advice) {
	case MADV_MERGEABLE:
		if ((vma->vm_flags & VM_MERGEABLE) || !vma_mergeable_ok(vma))
			break;
		err = ksm_register_mm(vma->vm_mm);
		if (!err) {
			*vm_flags |= VM_MERGEABLE;
			memory_became_mergeable();
		}
		break;
	case MADV_UNMERGEABLE:
		if (!(*vm_flags & VM_MERGEABLE))
			break;
		if (vma->anon_vma)
			err = unshare_ksm_range(vma, start, end, true);
		if (!err)
			*vm_flags &= ~VM_MERGEABLE;
		break;
	}
	return err;
}
EXPORT_SYMBOL_GPL(ksm_madvise);

/* Register @mm with ksmd, in process domain @pdomain. */
static int ksm_enter_domain(struct mm_struct *mm, u64 pdomain)
{
	struct ksm_mm *slot;
	bool wake;

	slot = kmem_cache_zalloc(ksm_mm_cache, GFP_KERNEL);
	if (!slot)
		return -ENOMEM;
	slot->mm = mm;
	slot->process_domain = pdomain;
	xa_init(&slot->items);

	spin_lock(&ksm_list_lock);
	wake = list_empty(&ksm_mm_list);
	hash_add(ksm_mm_hash, &slot->hash, (unsigned long)mm);
	if (ksm_cursor.slot && !(ksm_run & KSM_RUN_UNMERGE))
		list_add_tail(&slot->link, &ksm_cursor.slot->link);
	else
		list_add_tail(&slot->link, &ksm_mm_list);
	set_bit(MMF_VM_MERGEABLE, &mm->flags);
	mmgrab(mm);
	spin_unlock(&ksm_list_lock);

	if (wake)
		wake_up_interruptible(&ksm_thread_wait);
	return 0;
}

/**
 * __ksm_enter - Register @mm with ksmd.
 * @mm: The mm.
 *
 * The mm goes on the scan list just behind the cursor, so that ksmd
 * reaches it only after a while (a fork is often followed by exec).
 * While everything is being unmerged it goes to the end, so that the
 * unmerging pass sees it.
 *
 * Return: 0 or -ENOMEM.
 */
int __ksm_enter(struct mm_struct *mm)
{
	return ksm_enter_domain(mm, new_process_domain());
}

/**
 * __ksm_exit - Unregister an exiting @mm.
 * @mm: The mm; its users count is zero, or it never ran (failed exec).
 *
 * If ksmd has no items for @mm and is not positioned on it, the slot is
 * freed here.  Otherwise ksmd is left to free the items and the slot: it
 * only touches an mm after mmget_not_zero(), so it will not walk @mm's
 * page tables once they are being torn down.
 */
void __ksm_exit(struct mm_struct *mm)
{
	struct ksm_mm *slot;
	bool free_now = false;

	spin_lock(&ksm_list_lock);
	slot = slot_lookup(mm);
	if (slot && slot != ksm_cursor.slot) {
		if (xa_empty(&slot->items)) {
			hash_del(&slot->hash);
			list_del(&slot->link);
			free_now = true;
		} else if (ksm_cursor.slot) {
			/* Right after the cursor: ksmd reaps it soon. */
			list_move(&slot->link, &ksm_cursor.slot->link);
		}
	}
	spin_unlock(&ksm_list_lock);

	if (free_now) {
		xa_destroy(&slot->items);
		kmem_cache_free(ksm_mm_cache, slot);
		clear_bit(MMF_VM_MERGE_ANY, &mm->flags);
		clear_bit(MMF_VM_MERGEABLE, &mm->flags);
		mmdrop(mm);
	}
}

/**
 * ksm_fork - Set up KSM state of a child mm after dup_mmap().
 * @mm: The child mm.
 * @oldmm: The parent mm.
 *
 * Called with the mmap locks of both mms held for writing, once
 * dup_mmap() succeeded.  The child starts with no items of its own;
 * ksm_mm_init() zeroed its counters, and the KSM zero pages it inherited
 * were counted as their PTEs were copied (ksm_might_map_zero_page()), so
 * that a fork that fails half-way leaves every count exact.  It is
 * registered with ksmd if the parent was, in the parent's process merge
 * domain.
 */
void ksm_fork(struct mm_struct *mm, struct mm_struct *oldmm)
{
	struct ksm_mm *parent;
	u64 pdomain = 0;

	if (!test_bit(MMF_VM_MERGEABLE, &oldmm->flags))
		return;
	/* The child shares its parent's process domain until exec. */
	spin_lock(&ksm_list_lock);
	parent = slot_lookup(oldmm);
	if (parent)
		pdomain = parent->process_domain;
	spin_unlock(&ksm_list_lock);
	/* Registering the child is best effort. */
	ksm_enter_domain(mm, pdomain ? pdomain : new_process_domain());
}

/**
 * ksm_might_need_to_copy - Decide whether a swapped-in page can be mapped.
 * @folio: The folio swap-in found, locked.
 * @vma: The VMA it is to be mapped into.
 * @addr: The address it is to be mapped at.
 *
 * A KSM page that lost its node (or while everything is being unmerged),
 * or an anon page whose index or anon_vma does not fit @vma (it was a KSM
 * page when it was swapped out, and that is forgotten on swap), must not
 * be mapped here: it gets copied into a new locked folio.
 *
 * Return: @folio, a new folio, NULL on allocation failure, or
 * ERR_PTR(-EHWPOISON).
 */
struct folio *ksm_might_need_to_copy(struct folio *folio,
				     struct vm_area_struct *vma,
				     unsigned long addr)
{
	struct anon_vma *anon_vma = folio_anon_vma(folio);
	struct folio *copy;

	if (folio_test_large(folio))
		return folio;

	if (folio_test_ksm(folio)) {
		if (folio_ksm_node(folio) && !(ksm_run & KSM_RUN_UNMERGE))
			return folio;
	} else if (!anon_vma) {
		return folio;
	} else if (folio->index == linear_page_index(vma, addr) &&
		   anon_vma->root == vma->anon_vma->root) {
		return folio;
	}

	if (PageHWPoison(folio_page(folio, 0)))
		return ERR_PTR(-EHWPOISON);
	if (!folio_test_uptodate(folio))
		return folio;	/* do_swap_page() reports the I/O error */

	copy = vma_alloc_folio(GFP_HIGHUSER_MOVABLE, 0, vma, addr, false);
	if (!copy)
		return NULL;
	if (mem_cgroup_charge(copy, vma->vm_mm, GFP_KERNEL)) {
		folio_put(copy);
		return NULL;
	}
	if (copy_mc_user_highpage(folio_page(copy, 0), folio_page(folio, 0),
				  addr, vma)) {
		folio_put(copy);
		return ERR_PTR(-EHWPOISON);
	}
	folio_set_dirty(copy);
	__folio_mark_uptodate(copy);
	__folio_set_locked(copy);
#ifdef CONFIG_SWAP
	count_vm_event(KSM_SWPIN_COPY);
#endif
	return copy;
}

/**
 * rmap_walk_ksm - Call @rwc for every mapping of a KSM folio.
 * @folio: The KSM folio, locked.
 * @rwc: The walk control.
 *
 * Each item of the folio's node names the address and anon_vma of one
 * mapping.  The first round visits the VMAs of the items' own mms; the
 * second round visits the other VMAs in those anon_vmas at the same
 * addresses, i.e. mappings inherited by fork() after ksmd's last visit.
 */
void rmap_walk_ksm(struct folio *folio, struct rmap_walk_control *rwc)
{
	struct ksm_node *node;
	unsigned int round, i;

	VM_WARN_ON_ONCE_FOLIO(!folio_test_ksm(folio), folio);
	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);

	node = folio_ksm_node(folio);
	if (!node)
		return;

	for (round = 0; round < 2; round++) {
		for (i = 0; i < node->nr_maps; i++) {
			struct ksm_item *item = node->maps[i];
			struct anon_vma *av = item->anon_vma;
			unsigned long addr = item_address(item);
			struct mm_struct *own = item->owner->mm;
			struct anon_vma_chain *avc;
			pgoff_t first, last;

			cond_resched();
			item_pgoff_range(item, &first, &last);
			if (!anon_vma_trylock_read(av)) {
				if (rwc->try_lock) {
					rwc->contended = true;
					return;
				}
				anon_vma_lock_read(av);
			}
			anon_vma_interval_tree_foreach(avc, &av->rb_root, first,
						       last) {
				struct vm_area_struct *vma = avc->vma;

				cond_resched();
				if (addr < vma->vm_start || addr >= vma->vm_end)
					continue;
				/* Own mm first, then the forked ones. */
				if (round == 0 && vma->vm_mm != own)
					continue;
				if (round == 1 && vma->vm_mm == own)
					continue;
				if (rwc->invalid_vma &&
				    rwc->invalid_vma(vma, rwc->arg))
					continue;
				if (!rwc->rmap_one(folio, vma, addr, rwc->arg) ||
				    (rwc->done && rwc->done(folio))) {
					anon_vma_unlock_read(av);
					return;
				}
			}
			anon_vma_unlock_read(av);
		}
	}
}

#ifdef CONFIG_MEMORY_FAILURE
/* Queue for killing every process with a VMA mapping @item's page. */
static void kill_mappers_of(struct ksm_item *item, struct page *page,
			    struct list_head *to_kill, int force_early)
{
	unsigned long addr = item_address(item);
	struct anon_vma *av = item->anon_vma;
	struct anon_vma_chain *avc;
	struct task_struct *tsk, *t;
	pgoff_t first, last;

	item_pgoff_range(item, &first, &last);
	rcu_read_lock();
	for_each_process(tsk) {
		t = task_early_kill(tsk, force_early);
		if (!t)
			continue;
		anon_vma_interval_tree_foreach(avc, &av->rb_root, first, last) {
			struct vm_area_struct *vma = avc->vma;

			if (vma->vm_mm == t->mm && addr >= vma->vm_start &&
			    addr < vma->vm_end)
				add_to_kill_ksm(t, page, vma, to_kill, addr);
		}
	}
	rcu_read_unlock();
}

/**
 * collect_procs_ksm - Find the processes mapping a poisoned KSM page.
 * @folio: The KSM folio, locked.
 * @page: The poisoned page.
 * @to_kill: List the processes are added to.
 * @force_early: Kill every process mapping it, not only those that asked.
 */
void collect_procs_ksm(struct folio *folio, struct page *page,
		       struct list_head *to_kill, int force_early)
{
	struct ksm_node *node = folio_ksm_node(folio);
	struct ksm_item *item;
	unsigned int i;

	for (i = 0; node && i < node->nr_maps; i++) {
		item = node->maps[i];
		anon_vma_lock_read(item->anon_vma);
		kill_mappers_of(item, page, to_kill, force_early);
		anon_vma_unlock_read(item->anon_vma);
	}
}
#endif /* CONFIG_MEMORY_FAILURE */

#ifdef CONFIG_MIGRATION
/**
 * folio_migrate_ksm - Hand the stable node of @folio over to @newfolio.
 * @newfolio: The new folio, locked, ->mapping already copied.
 * @folio: The old folio, locked.
 */
void folio_migrate_ksm(struct folio *newfolio, struct folio *folio)
{
	struct ksm_node *node;

	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(newfolio), newfolio);
	VM_WARN_ON_ONCE_FOLIO(newfolio->mapping != folio->mapping, newfolio);

	node = folio_ksm_node(folio);
	if (!node)
		return;
	VM_WARN_ON_ONCE_FOLIO(node->kpfn != folio_pfn(folio), folio);
	WRITE_ONCE(node->kpfn, folio_pfn(newfolio));
	/* node_folio() must see the new pfn before the old page goes stale. */
	smp_wmb();
	folio_set_ksm_node(folio, NULL);
}
#endif

/**
 * ksm_process_profit - Memory KSM saves for @mm, minus its metadata cost.
 * @mm: The mm.
 *
 * Return: the profit in bytes, possibly negative.
 */
long ksm_process_profit(struct mm_struct *mm)
{
	return (long)(mm->ksm_merging_pages + mm_ksm_zero_pages(mm)) *
		PAGE_SIZE - mm->ksm_rmap_items * sizeof(struct ksm_item);
}

/* ------------------------------------------------------------------ */
/* Whole-engine resets                                                 */
/* ------------------------------------------------------------------ */

/* Drop every node whose page is no longer mapped; -EBUSY if some is. */
static int stable_drop_all(void)
{
	struct hlist_node *tmp;
	struct ksm_node *node;
	struct folio *folio;
	unsigned long i;
	int err = 0;

	for (i = 0; i < (1UL << ksm_stable.bits); i++) {
		hlist_for_each_entry_safe(node, tmp, &ksm_stable.bucket[i],
					  hnode) {
			folio = node_folio(node, true);
			if (!folio)
				continue;
			if (folio_mapped(folio)) {
				err = -EBUSY;
			} else {
				folio_set_ksm_node(folio, NULL);
				node_free(node);
			}
			folio_unlock(folio);
			folio_put(folio);
			cond_resched();
		}
	}
	return err;
}

/* run=2: unshare every KSM page and free all items.  ksm_mutex held. */
static int ksm_unmerge_everything(void)
{
	struct vm_area_struct *vma;
	struct mm_struct *mm;
	struct ksm_mm *slot;
	int err = 0;

	spin_lock(&ksm_list_lock);
	ksm_cursor.slot = list_first_entry_or_null(&ksm_mm_list,
						   struct ksm_mm, link);
	spin_unlock(&ksm_list_lock);

	while ((slot = ksm_cursor.slot)) {
		mm = slot->mm;
		if (mmget_not_zero(mm)) {
			VMA_ITERATOR(vmi, mm, 0);

			mmap_read_lock(mm);
			for_each_vma(vmi, vma) {
				if (!(vma->vm_flags & VM_MERGEABLE) ||
				    !vma->anon_vma)
					continue;
				err = unshare_ksm_range(vma, vma->vm_start,
							vma->vm_end, false);
				if (err)
					break;
			}
			mmap_read_unlock(mm);
			mmput(mm);
			if (err) {
				spin_lock(&ksm_list_lock);
				ksm_cursor.slot = NULL;
				spin_unlock(&ksm_list_lock);
				return err;
			}
		}
		items_drop(slot, 0, ULONG_MAX);
		if (cursor_advance(slot))
			break;
	}

	stable_drop_all();
	unstable_reset(&ksm_unstable);
	ksm_full_scans = 0;
	return 0;
}

#ifdef CONFIG_MEMORY_HOTREMOVE
/* Forget nodes whose (stale) pfn lies in memory that went offline. */
static int ksm_memory_notify(struct notifier_block *nb, unsigned long action,
			     void *arg)
{
	struct memory_notify *mn = arg;
	unsigned long start = mn->start_pfn, end = start + mn->nr_pages;
	struct hlist_node *tmp;
	struct ksm_node *node;
	unsigned long i;

	if (action != MEM_OFFLINE)
		return NOTIFY_OK;

	mutex_lock(&ksm_mutex);
	for (i = 0; i < (1UL << ksm_stable.bits); i++) {
		hlist_for_each_entry_safe(node, tmp, &ksm_stable.bucket[i],
					  hnode) {
			if (node->kpfn >= start && node->kpfn < end)
				node_free(node);
		}
	}
	mutex_unlock(&ksm_mutex);
	return NOTIFY_OK;
}
#endif

/* ------------------------------------------------------------------ */
/* sysfs: /sys/kernel/mm/ksm/                                          */
/* ------------------------------------------------------------------ */

#ifdef CONFIG_SYSFS

#define KSM_RO(name)							\
	static struct kobj_attribute name##_attr =			\
		__ATTR(name, 0444, name##_read, NULL)
#define KSM_RW(name)							\
	static struct kobj_attribute name##_attr =			\
		__ATTR(name, 0644, name##_read, name##_write)

/* Read-only counters that are printed as they are. */
#define KSM_COUNTER(name, fmt, expr)					\
static ssize_t name##_read(struct kobject *kobj,			\
			   struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, fmt "\n", expr);				\
}									\
KSM_RO(name)

KSM_COUNTER(pages_scanned, "%lu", READ_ONCE(ksm_pages_scanned));
KSM_COUNTER(pages_shared, "%lu", READ_ONCE(ksm_pages_shared));
KSM_COUNTER(pages_sharing, "%lu", READ_ONCE(ksm_pages_sharing));
KSM_COUNTER(pages_unshared, "%lu", READ_ONCE(ksm_pages_unshared));
KSM_COUNTER(pages_skipped, "%lu", READ_ONCE(ksm_pages_skipped));
KSM_COUNTER(full_scans, "%lu", READ_ONCE(ksm_full_scans));
KSM_COUNTER(stable_node_chains, "%lu", READ_ONCE(ksm_nr_chains));
KSM_COUNTER(stable_node_dups, "%lu", READ_ONCE(ksm_nr_dups));
KSM_COUNTER(ksm_zero_pages, "%ld", atomic_long_read(&ksm_zero_pages));
KSM_COUNTER(pages_scrubbed, "%lu", READ_ONCE(ksm_pages_scrubbed));
KSM_COUNTER(scrub_failures, "%lu", READ_ONCE(ksm_scrub_failures));

/* Plain unsigned int tunables share one parser. */
static ssize_t ksm_store_uint(unsigned int *knob, const char *buf,
			      size_t len)
{
	unsigned int val;

	if (kstrtouint(buf, 10, &val))
		return -EINVAL;
	WRITE_ONCE(*knob, val);
	return len;
}

static ssize_t pages_volatile_read(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	long v = (long)READ_ONCE(ksm_nr_items) -
		 (long)READ_ONCE(ksm_pages_shared) -
		 (long)READ_ONCE(ksm_pages_sharing) -
		 (long)READ_ONCE(ksm_pages_unshared);

	/* Read without the lock, the sum may be off for a moment. */
	return sysfs_emit(buf, "%ld\n", max(v, 0L));
}

KSM_RO(pages_volatile);

static ssize_t general_profit_read(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	long saved = (long)READ_ONCE(ksm_pages_sharing) +
		     atomic_long_read(&ksm_zero_pages);

	return sysfs_emit(buf, "%ld\n", saved * (long)PAGE_SIZE -
			  (long)(READ_ONCE(ksm_nr_items) *
				 sizeof(struct ksm_item)));
}

KSM_RO(general_profit);

static ssize_t run_read(struct kobject *kobj, struct kobj_attribute *attr,
			char *buf)
{
	return sysfs_emit(buf, "%lu\n", READ_ONCE(ksm_run));
}

static ssize_t run_write(struct kobject *kobj, struct kobj_attribute *attr,
			 const char *buf, size_t len)
{
	unsigned int val;
	ssize_t ret = len;
	int err;

	if (kstrtouint(buf, 10, &val) || val > KSM_RUN_UNMERGE)
		return -EINVAL;

	mutex_lock(&ksm_mutex);
	if (ksm_run != val) {
		WRITE_ONCE(ksm_run, val);
		if (val == KSM_RUN_UNMERGE) {
			set_current_oom_origin();
			err = ksm_unmerge_everything();
			clear_current_oom_origin();
			if (err) {
				WRITE_ONCE(ksm_run, KSM_RUN_STOP);
				ret = err;
			}
		}
	}
	mutex_unlock(&ksm_mutex);

	if (val == KSM_RUN_MERGE)
		wake_up_interruptible(&ksm_thread_wait);
	return ret;
}

KSM_RW(run);

static ssize_t pages_to_scan_read(struct kobject *kobj,
				  struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_pages_to_scan));
}

static ssize_t pages_to_scan_write(struct kobject *kobj,
				   struct kobj_attribute *attr,
				   const char *buf, size_t len)
{
	/* The advisor owns the value while it is active. */
	if (ksm_advisor != KSM_ADVISOR_NONE)
		return -EINVAL;
	return ksm_store_uint(&ksm_pages_to_scan, buf, len);
}

KSM_RW(pages_to_scan);

static ssize_t sleep_millisecs_read(struct kobject *kobj,
				    struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_sleep_ms));
}

static ssize_t sleep_millisecs_write(struct kobject *kobj,
				     struct kobj_attribute *attr,
				     const char *buf, size_t len)
{
	ssize_t ret = ksm_store_uint(&ksm_sleep_ms, buf, len);

	if (ret > 0)
		wake_up_interruptible(&ksm_sleep_wait);
	return ret;
}

KSM_RW(sleep_millisecs);

static ssize_t max_page_sharing_read(struct kobject *kobj,
				     struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", READ_ONCE(ksm_max_sharing));
}

static ssize_t max_page_sharing_write(struct kobject *kobj,
				      struct kobj_attribute *attr,
				      const char *buf, size_t len)
{
	int val, err;

	err = kstrtoint(buf, 10, &val);
	if (err)
		return err;
	/* A fresh KSM page already has two mappings. */
	if (val < 2)
		return -EINVAL;
	if (READ_ONCE(ksm_max_sharing) == val)
		return len;

	err = 0;
	mutex_lock(&ksm_mutex);
	if (ksm_max_sharing != val) {
		if (ksm_pages_shared || stable_drop_all())
			err = -EBUSY;
		else
			WRITE_ONCE(ksm_max_sharing, val);
	}
	mutex_unlock(&ksm_mutex);
	return err ? err : len;
}

KSM_RW(max_page_sharing);

#ifdef CONFIG_NUMA
static ssize_t merge_across_nodes_read(struct kobject *kobj,
				       struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_across_nodes));
}

static ssize_t merge_across_nodes_write(struct kobject *kobj,
					struct kobj_attribute *attr,
					const char *buf, size_t len)
{
	unsigned long val;
	int err;

	err = kstrtoul(buf, 10, &val);
	if (err)
		return err;
	if (val > 1)
		return -EINVAL;

	err = 0;
	mutex_lock(&ksm_mutex);
	if (ksm_across_nodes != val) {
		/* KSM pages made under the old rule would break the new. */
		if (ksm_pages_shared || stable_drop_all())
			err = -EBUSY;
		else
			WRITE_ONCE(ksm_across_nodes, val);
	}
	mutex_unlock(&ksm_mutex);
	return err ? err : len;
}

KSM_RW(merge_across_nodes);
#endif

static ssize_t use_zero_pages_read(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_use_zero_pages));
}

static ssize_t use_zero_pages_write(struct kobject *kobj,
				    struct kobj_attribute *attr,
				    const char *buf, size_t len)
{
	bool val;

	if (kstrtobool(buf, &val))
		return -EINVAL;
	WRITE_ONCE(ksm_use_zero_pages, val);
	return len;
}

KSM_RW(use_zero_pages);

static ssize_t stable_node_chains_prune_millisecs_read(struct kobject *kobj,
						       struct kobj_attribute *attr,
						       char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_chain_prune_ms));
}

static ssize_t stable_node_chains_prune_millisecs_write(struct kobject *kobj,
							struct kobj_attribute *attr,
							const char *buf,
							size_t len)
{
	return ksm_store_uint(&ksm_chain_prune_ms, buf, len);
}

KSM_RW(stable_node_chains_prune_millisecs);

static ssize_t smart_scan_read(struct kobject *kobj,
			       struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_smart_scan));
}

static ssize_t smart_scan_write(struct kobject *kobj,
				struct kobj_attribute *attr,
				const char *buf, size_t len)
{
	bool val;

	if (kstrtobool(buf, &val))
		return -EINVAL;
	WRITE_ONCE(ksm_smart_scan, val);
	return len;
}

KSM_RW(smart_scan);

static ssize_t merge_domain_read(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	enum ksm_domain_policy cur = READ_ONCE(ksm_domain_policy);
	int i, n = 0;

	for (i = 0; i < ARRAY_SIZE(ksm_domain_names); i++)
		n += sysfs_emit_at(buf, n, i == cur ? "%s[%s]" : "%s%s",
				   i ? " " : "", ksm_domain_names[i]);
	return n + sysfs_emit_at(buf, n, "\n");
}

/*
 * KSM pages (and, unless they may cross domains, KSM zero pages) made
 * under one policy would break the next one: refuse with -EBUSY while
 * there are any.  Unstable entries of the old policy cannot match new
 * lookups, as a domain tag carries its policy.
 */
static ssize_t merge_domain_write(struct kobject *kobj,
				  struct kobj_attribute *attr,
				  const char *buf, size_t len)
{
	int policy = sysfs_match_string(ksm_domain_names, buf);
	int err = 0;

	if (policy < 0)
		return -EINVAL;
	mutex_lock(&ksm_mutex);
	if (policy != ksm_domain_policy) {
		if (ksm_pages_shared || atomic_long_read(&ksm_zero_pages) ||
		    stable_drop_all()) {
			err = -EBUSY;
		} else {
			WRITE_ONCE(ksm_domain_policy, policy);
		}
	}
	mutex_unlock(&ksm_mutex);
	return err ? err : len;
}

KSM_RW(merge_domain);

static ssize_t zero_pages_across_domains_read(struct kobject *kobj,
					      struct kobj_attribute *attr,
					      char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_zero_cross_domains));
}

static ssize_t zero_pages_across_domains_write(struct kobject *kobj,
					       struct kobj_attribute *attr,
					       const char *buf, size_t len)
{
	bool val;
	int err = 0;

	if (kstrtobool(buf, &val))
		return -EINVAL;
	mutex_lock(&ksm_mutex);
	/* Zero pages already shared across domains would stay so. */
	if (!val && ksm_zero_cross_domains && ksm_domain_policy &&
	    atomic_long_read(&ksm_zero_pages))
		err = -EBUSY;
	else
		WRITE_ONCE(ksm_zero_cross_domains, val);
	mutex_unlock(&ksm_mutex);
	return err ? err : len;
}

KSM_RW(zero_pages_across_domains);

static ssize_t scrub_pages_per_batch_read(struct kobject *kobj,
					  struct kobj_attribute *attr,
					  char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_scrub_batch));
}

static ssize_t scrub_pages_per_batch_write(struct kobject *kobj,
					   struct kobj_attribute *attr,
					   const char *buf, size_t len)
{
	return ksm_store_uint(&ksm_scrub_batch, buf, len);
}

KSM_RW(scrub_pages_per_batch);

static ssize_t advisor_mode_read(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", ksm_advisor == KSM_ADVISOR_SCAN_TIME ?
			  "none [scan-time]" : "[none] scan-time");
}

static ssize_t advisor_mode_write(struct kobject *kobj,
				  struct kobj_attribute *attr,
				  const char *buf, size_t len)
{
	enum ksm_advisor_mode mode;

	if (sysfs_streq(buf, "scan-time"))
		mode = KSM_ADVISOR_SCAN_TIME;
	else if (sysfs_streq(buf, "none"))
		mode = KSM_ADVISOR_NONE;
	else
		return -EINVAL;

	if (mode != ksm_advisor) {
		ksm_advisor = mode;
		advisor_reset();
	}
	return len;
}

KSM_RW(advisor_mode);

static ssize_t advisor_max_cpu_read(struct kobject *kobj,
				    struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_advisor_max_cpu));
}

static ssize_t advisor_max_cpu_write(struct kobject *kobj,
				     struct kobj_attribute *attr,
				     const char *buf, size_t len)
{
	unsigned long val;

	if (kstrtoul(buf, 10, &val))
		return -EINVAL;
	WRITE_ONCE(ksm_advisor_max_cpu, val);
	return len;
}

KSM_RW(advisor_max_cpu);

/* The advisor's unsigned long knobs share one parser. */
static ssize_t ksm_store_ulong(unsigned long *knob, const char *buf,
			       size_t len, unsigned long min)
{
	unsigned long val;

	if (kstrtoul(buf, 10, &val) || val < min)
		return -EINVAL;
	WRITE_ONCE(*knob, val);
	return len;
}

static ssize_t advisor_min_pages_to_scan_read(struct kobject *kobj,
					      struct kobj_attribute *attr,
					      char *buf)
{
	return sysfs_emit(buf, "%lu\n", READ_ONCE(ksm_advisor_min_pages));
}

static ssize_t advisor_min_pages_to_scan_write(struct kobject *kobj,
					       struct kobj_attribute *attr,
					       const char *buf, size_t len)
{
	return ksm_store_ulong(&ksm_advisor_min_pages, buf, len, 0);
}

KSM_RW(advisor_min_pages_to_scan);

static ssize_t advisor_max_pages_to_scan_read(struct kobject *kobj,
					      struct kobj_attribute *attr,
					      char *buf)
{
	return sysfs_emit(buf, "%lu\n", READ_ONCE(ksm_advisor_max_pages));
}

static ssize_t advisor_max_pages_to_scan_write(struct kobject *kobj,
					       struct kobj_attribute *attr,
					       const char *buf, size_t len)
{
	return ksm_store_ulong(&ksm_advisor_max_pages, buf, len, 0);
}

KSM_RW(advisor_max_pages_to_scan);

static ssize_t advisor_target_scan_time_read(struct kobject *kobj,
					     struct kobj_attribute *attr,
					     char *buf)
{
	return sysfs_emit(buf, "%lu\n", READ_ONCE(ksm_advisor_target_time));
}

static ssize_t advisor_target_scan_time_write(struct kobject *kobj,
					      struct kobj_attribute *attr,
					      const char *buf, size_t len)
{
	return ksm_store_ulong(&ksm_advisor_target_time, buf, len, 1);
}

KSM_RW(advisor_target_scan_time);

static struct attribute *ksm_sysfs_attrs[] = {
	/* tunables */
	&advisor_max_cpu_attr.attr,
	&advisor_max_pages_to_scan_attr.attr,
	&advisor_min_pages_to_scan_attr.attr,
	&advisor_mode_attr.attr,
	&advisor_target_scan_time_attr.attr,
	&max_page_sharing_attr.attr,
	&merge_domain_attr.attr,
#ifdef CONFIG_NUMA
	&merge_across_nodes_attr.attr,
#endif
	&pages_to_scan_attr.attr,
	&run_attr.attr,
	&scrub_pages_per_batch_attr.attr,
	&sleep_millisecs_attr.attr,
	&smart_scan_attr.attr,
	&stable_node_chains_prune_millisecs_attr.attr,
	&use_zero_pages_attr.attr,
	&zero_pages_across_domains_attr.attr,
	/* statistics */
	&full_scans_attr.attr,
	&general_profit_attr.attr,
	&ksm_zero_pages_attr.attr,
	&pages_scanned_attr.attr,
	&pages_scrubbed_attr.attr,
	&pages_shared_attr.attr,
	&pages_sharing_attr.attr,
	&pages_skipped_attr.attr,
	&pages_unshared_attr.attr,
	&pages_volatile_attr.attr,
	&scrub_failures_attr.attr,
	&stable_node_chains_attr.attr,
	&stable_node_dups_attr.attr,
	NULL,
};

static const struct attribute_group ksm_sysfs_group = {
	.name = "ksm",
	.attrs = ksm_sysfs_attrs,
};
#endif /* CONFIG_SYSFS */

#ifdef CONFIG_KSM_SCRUB_INJECT
/*
 * /sys/kernel/debug/ksm/ (debug kernels only).  hash_seed shows the seed
 * of the content hash.  flip_bit: writing a virtual address of the
 * writer's own flips the lowest bit of the first byte of the KSM page
 * mapped there, as a memory fault would, so that tests can watch the
 * scrubber find it.  -EINVAL if no KSM page is mapped there.
 */
static ssize_t flip_bit_write(struct file *file, const char __user *ubuf,
			      size_t len, loff_t *ppos)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	struct folio_walk fw;
	struct folio *folio;
	unsigned long addr;
	int err;
	u8 *p;

	err = kstrtoul_from_user(ubuf, len, 0, &addr);
	if (err)
		return err;
	err = -EINVAL;
	mmap_read_lock(mm);
	vma = vma_lookup(mm, addr);
	folio = vma ? folio_walk_start(&fw, vma, addr, 0) : NULL;
	if (folio) {
		if (folio_test_ksm(folio)) {
			p = kmap_local_page(fw.page);
			p[0] ^= 1;
			kunmap_local(p);
			err = 0;
		}
		folio_walk_end(&fw, vma);
	}
	mmap_read_unlock(mm);
	return err ? err : len;
}

static const struct file_operations ksm_flip_bit_fops = {
	.owner = THIS_MODULE,
	.write = flip_bit_write,
	.llseek = noop_llseek,
};

static void __init ksm_debugfs_init(void)
{
	struct dentry *dir = debugfs_create_dir("ksm", NULL);

	debugfs_create_file("flip_bit", 0200, dir, NULL, &ksm_flip_bit_fops);
	/* For tests that must make pages of equal hash: see ksm_hash_seed. */
	debugfs_create_x64("hash_seed", 0400, dir, &ksm_hash_seed);
}
#else
static inline void ksm_debugfs_init(void) { }
#endif

/* ------------------------------------------------------------------ */
/* Initialisation                                                      */
/* ------------------------------------------------------------------ */

static int __init ksm_init(void)
{
	struct task_struct *ksmd;
	int err = -ENOMEM;

	BUILD_BUG_ON(sizeof(struct ksm_key) != 8);

	ksm_hash_seed = get_random_u64();
	ksm_zero_hash = page_content_hash(ZERO_PAGE(0));

	ksm_item_cache = KMEM_CACHE(ksm_item, 0);
	ksm_node_cache = KMEM_CACHE(ksm_node, 0);
	ksm_mm_cache = KMEM_CACHE(ksm_mm, 0);
	if (!ksm_item_cache || !ksm_node_cache || !ksm_mm_cache)
		goto fail;

	ksm_unstable.bits = KSM_TABLE_MIN_BITS;
	ksm_unstable.bucket = kvcalloc(1UL << KSM_TABLE_MIN_BITS,
				       sizeof(*ksm_unstable.bucket),
				       GFP_KERNEL);
	ksm_stable.bits = KSM_TABLE_MIN_BITS;
	ksm_stable.bucket = kvcalloc(1UL << KSM_TABLE_MIN_BITS,
				     sizeof(*ksm_stable.bucket), GFP_KERNEL);
	if (!ksm_unstable.bucket || !ksm_stable.bucket)
		goto fail;

	ksmd = kthread_run(ksmd_fn, NULL, "ksmd");
	if (IS_ERR(ksmd)) {
		pr_err("ksm: cannot start ksmd\n");
		err = PTR_ERR(ksmd);
		goto fail;
	}

#ifdef CONFIG_SYSFS
	err = sysfs_create_group(mm_kobj, &ksm_sysfs_group);
	if (err) {
		pr_err("ksm: cannot register sysfs files\n");
		kthread_stop(ksmd);
		goto fail;
	}
#else
	ksm_run = KSM_RUN_MERGE;	/* nobody could switch it on */
#endif

#ifdef CONFIG_MEMORY_HOTREMOVE
	hotplug_memory_notifier(ksm_memory_notify, KSM_CALLBACK_PRI);
#endif
	ksm_debugfs_init();
	return 0;

fail:
	kvfree(ksm_stable.bucket);
	kvfree(ksm_unstable.bucket);
	kmem_cache_destroy(ksm_mm_cache);
	kmem_cache_destroy(ksm_node_cache);
	kmem_cache_destroy(ksm_item_cache);
	return err;
}
subsys_initcall(ksm_init);

#ifdef CONFIG_KSM_KUNIT_TEST
#include "ksm_kunit.c"
#endif
