// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of the KSM engine's standalone units: the content key, the
 * stable and unstable hash indexes, and the rules of chains of duplicates.
 *
 * This file is included at the end of mm/ksm.c (CONFIG_KSM_KUNIT_TEST) so
 * that it reaches the engine's static functions.  Nothing here needs an
 * mm: a KSM page is stood in for by a page from alloc_page() whose
 * ->mapping points to its ksm_node, as folio_set_ksm_node() leaves a real
 * one, and such a page is never mapped; "its page is gone" is simulated
 * by clearing ->mapping, as freeing an anonymous page does.
 *
 * Whatever touches the engine's shared state (the stable index, the
 * counters, the pass number) runs under ksm_mutex and leaves that state as
 * it found it before unlocking.  Inside those sections only KUNIT_EXPECT_*
 * is used, as a failed KUNIT_ASSERT_* would end the test with the mutex
 * held.  Test nodes live in a merge domain the engine never uses, so that
 * none of its own nodes can answer a test's lookup.
 */

#include <kunit/test.h>

#define KSM_TEST_DOMAIN		0x6b736d74	/* "ksmt" */
#define KSM_TEST_NR_GROW	9000		/* grows the index twice */

KUNIT_DEFINE_ACTION_WRAPPER(ksm_test_kvfree, kvfree, const void *);

/* Have @action(@arg) run when the test ends, or end the test now. */
static void ksm_test_defer(struct kunit *test, kunit_action_t *action,
			   void *arg)
{
	KUNIT_ASSERT_EQ(test, 0, kunit_add_action_or_reset(test, action, arg));
}

/* Fill @page with content that depends on @seed only. */
static void ksm_test_fill(struct page *page, u32 seed)
{
	u32 *p = kmap_local_page(page);
	unsigned int i;

	for (i = 0; i < PAGE_SIZE / sizeof(*p); i++)
		p[i] = hash_32(seed, 32) ^ (i * 0x9e3779b9U);
	kunmap_local(p);
}

static void ksm_test_flip_bit(struct page *page, unsigned int bit)
{
	u8 *p = kmap_local_page(page);

	p[bit / 8] ^= 1U << (bit % 8);
	kunmap_local(p);
}

static void ksm_test_free_page(void *arg)
{
	struct page *page = arg;

	page->mapping = NULL;
	__free_page(page);
}

/* A page on node @nid (NUMA_NO_NODE: any), freed when the test ends. */
static struct page *ksm_test_page_on(struct kunit *test, int nid, u32 seed)
{
	struct page *page;

	if (nid == NUMA_NO_NODE)
		page = alloc_page(GFP_KERNEL);
	else
		page = alloc_pages_node(nid, GFP_KERNEL | __GFP_THISNODE, 0);
	KUNIT_ASSERT_NOT_NULL(test, page);
	ksm_test_defer(test, ksm_test_free_page, page);
	ksm_test_fill(page, seed);
	return page;
}

static struct page *ksm_test_page(struct kunit *test, u32 seed)
{
	return ksm_test_page_on(test, NUMA_NO_NODE, seed);
}

/* ------------------------------------------------------------------ */
/* The content key                                                     */
/* ------------------------------------------------------------------ */

/* Pages with equal content have equal keys, wherever they are. */
static void ksm_test_key_equal_pages(struct kunit *test)
{
	struct page *a = ksm_test_page(test, 1);
	struct page *b = ksm_test_page(test, 1);
	struct ksm_key ka = { page_content_hash(a), 0 };
	struct ksm_key kb = { page_content_hash(b), 0 };
	unsigned int bits;

	KUNIT_EXPECT_EQ(test, ka.hash, kb.hash);
	KUNIT_EXPECT_TRUE(test, key_equal(ka, kb));
	/* Hashing does not change the page. */
	KUNIT_EXPECT_EQ(test, 0, memcmp_pages(a, b));
	KUNIT_EXPECT_EQ(test, ka.hash, page_content_hash(a));

	for (bits = 1; bits <= KSM_TABLE_MAX_BITS; bits++) {
		KUNIT_EXPECT_EQ(test, key_slot(ka, bits), key_slot(kb, bits));
		KUNIT_EXPECT_LT(test, key_slot(ka, bits), 1UL << bits);
	}
}

/* Any one-bit change of the content changes the key. */
static void ksm_test_key_one_bit(struct kunit *test)
{
	static const unsigned int bits[] = {
		0, 7, 8, 63, 64, PAGE_SIZE * 4 + 3, PAGE_SIZE * 8 - 64,
		PAGE_SIZE * 8 - 1,
	};
	struct page *a = ksm_test_page(test, 2);
	struct page *b = ksm_test_page(test, 2);
	struct ksm_key ka = { page_content_hash(a), 0 };
	struct ksm_key kb;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bits); i++) {
		ksm_test_flip_bit(b, bits[i]);
		kb.hash = page_content_hash(b);
		kb.domain = 0;
		KUNIT_EXPECT_NE_MSG(test, ka.hash, kb.hash, "bit %u", bits[i]);
		KUNIT_EXPECT_FALSE_MSG(test, key_equal(ka, kb), "bit %u",
				       bits[i]);
		ksm_test_flip_bit(b, bits[i]);
		KUNIT_EXPECT_EQ(test, ka.hash, page_content_hash(b));
	}
}

/*
 * pages_equal() decides every merge: it must agree with memcmp_pages(),
 * the architecture's say on equal pages, whichever bit differs.
 */
static void ksm_test_pages_equal(struct kunit *test)
{
	static const unsigned int bits[] = {
		0, 63, 64, 511, 512, PAGE_SIZE * 4 + 3, PAGE_SIZE * 8 - 1,
	};
	struct page *a = ksm_test_page(test, 5);
	struct page *b = ksm_test_page(test, 5);
	struct page *z = ksm_test_page(test, 6);
	unsigned int i;

	KUNIT_EXPECT_TRUE(test, pages_equal(a, b));
	KUNIT_EXPECT_EQ(test, !memcmp_pages(a, b), pages_equal(a, b));
	for (i = 0; i < ARRAY_SIZE(bits); i++) {
		ksm_test_flip_bit(b, bits[i]);
		KUNIT_EXPECT_FALSE_MSG(test, pages_equal(a, b), "bit %u",
				       bits[i]);
		KUNIT_EXPECT_EQ_MSG(test, !memcmp_pages(a, b),
				    pages_equal(a, b), "bit %u", bits[i]);
		ksm_test_flip_bit(b, bits[i]);
	}
	clear_highpage(z);
	KUNIT_EXPECT_EQ(test, !memcmp_pages(z, ZERO_PAGE(0)),
			pages_equal(z, ZERO_PAGE(0)));
	KUNIT_EXPECT_TRUE(test, pages_equal(z, ZERO_PAGE(0)));
}

/* The merge domain is part of the key. */
static void ksm_test_key_domain(struct kunit *test)
{
	struct page *a = ksm_test_page(test, 3);
	struct ksm_key k0 = { page_content_hash(a), 0 };
	struct ksm_key k1 = { k0.hash, 1 };
	struct ksm_key kt = { k0.hash, KSM_TEST_DOMAIN };

	KUNIT_EXPECT_TRUE(test, key_equal(k0, k0));
	KUNIT_EXPECT_FALSE(test, key_equal(k0, k1));
	KUNIT_EXPECT_FALSE(test, key_equal(k1, k0));
	KUNIT_EXPECT_FALSE(test, key_equal(k0, kt));
}

/*
 * Two groups never share a domain tag, however far apart their
 * identifiers are (a cgroup's id grows with every mkdir; process domains
 * count registrations), and no group reaches the quarantine.
 */
static void ksm_test_domain_tags(struct kunit *test)
{
	static const u64 ids[] = {
		1, 1 + BIT_ULL(30), 1 + BIT_ULL(31), 1 + BIT_ULL(32),
		1 + BIT_ULL(40), BIT_ULL(30) - 1,
	};
	enum ksm_domain_policy p, q;
	unsigned int i, j;

	for (p = KSM_DOMAIN_CGROUP; p <= KSM_DOMAIN_PROCESS; p++) {
		for (i = 0; i < ARRAY_SIZE(ids); i++) {
			KUNIT_EXPECT_NE(test, domain_tag(p, ids[i]),
					KSM_QUARANTINE);
			KUNIT_EXPECT_NE(test, domain_tag(p, ids[i]), 0);
			for (j = 0; j < i; j++)
				KUNIT_EXPECT_NE_MSG(test, domain_tag(p, ids[i]),
						    domain_tag(p, ids[j]),
						    "policy %d, ids %llx %llx",
						    p, ids[i], ids[j]);
		}
		for (q = KSM_DOMAIN_CGROUP; q < p; q++)
			KUNIT_EXPECT_NE(test, domain_tag(p, 1),
					domain_tag(q, 1));
	}
	/* The counter of process domains does not wrap in practice. */
	KUNIT_EXPECT_GE(test, sizeof(ksm_process_domains) * BITS_PER_BYTE,
			62);
}

/* A zero-filled page has the key use_zero_pages looks for. */
static void ksm_test_key_zero_page(struct kunit *test)
{
	struct page *a = ksm_test_page(test, 4);

	clear_highpage(a);
	KUNIT_EXPECT_EQ(test, ksm_zero_hash, page_content_hash(a));
	KUNIT_EXPECT_EQ(test, ksm_zero_hash, page_content_hash(ZERO_PAGE(0)));
}

/* ------------------------------------------------------------------ */
/* The unstable index                                                  */
/* ------------------------------------------------------------------ */

static void ksm_test_free_utable(void *arg)
{
	struct ksm_utable *t = arg;

	kvfree(t->bucket);
}

/* An empty unstable index of 2^@bits buckets, freed when the test ends. */
static struct ksm_utable *ksm_test_utable(struct kunit *test,
					  unsigned int bits)
{
	struct ksm_utable *t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, t);
	t->bits = bits;
	t->bucket = kvcalloc(1UL << bits, sizeof(*t->bucket), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, t->bucket);
	ksm_test_defer(test, ksm_test_free_utable, t);
	return t;
}

static struct ksm_item *ksm_test_items(struct kunit *test, unsigned int n)
{
	struct ksm_item *items = kvcalloc(n, sizeof(*items), GFP_KERNEL);
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, items);
	ksm_test_defer(test, ksm_test_kvfree, items);
	for (i = 0; i < n; i++)
		items[i].addr = (unsigned long)(i + 1) << PAGE_SHIFT;
	return items;
}

/* Would a lookup of @item's key in @t meet @item? */
static bool ksm_test_uholds(struct ksm_utable *t, struct ksm_item *item)
{
	struct ksm_item *p;

	for (p = *unstable_bucket(t, item->key); p; p = p->next)
		if (p == item)
			return true;
	return false;
}

/* Entries of @t, each checked to sit in the bucket its key selects. */
static unsigned long ksm_test_ucount(struct kunit *test, struct ksm_utable *t)
{
	unsigned long i, n = 0;
	struct ksm_item *p;

	for (i = 0; i < (1UL << t->bits); i++) {
		for (p = t->bucket[i]; p; p = p->next) {
			KUNIT_EXPECT_EQ(test, key_slot(p->key, t->bits), i);
			n++;
		}
	}
	return n;
}

static struct ksm_key ksm_test_key(u32 n)
{
	return (struct ksm_key){ hash_32(n, 32), KSM_TEST_DOMAIN };
}

/* Insert, look up and remove, with several entries per bucket. */
static void ksm_test_unstable_basic(struct kunit *test)
{
	const unsigned int n = 64, nkeys = 16;
	struct ksm_utable *t = ksm_test_utable(test, KSM_TABLE_MIN_BITS);
	struct ksm_item *items = ksm_test_items(test, n);
	unsigned long unshared;
	unsigned int i;

	mutex_lock(&ksm_mutex);
	unshared = ksm_pages_unshared;
	for (i = 0; i < n; i++)
		unstable_insert(t, &items[i], ksm_test_key(i % nkeys));
	KUNIT_EXPECT_EQ(test, t->count, n);
	KUNIT_EXPECT_EQ(test, ksm_test_ucount(test, t), n);
	KUNIT_EXPECT_EQ(test, ksm_pages_unshared, unshared + n);
	for (i = 0; i < n; i++) {
		KUNIT_EXPECT_TRUE(test, key_equal(items[i].key,
						  ksm_test_key(i % nkeys)));
		KUNIT_EXPECT_TRUE(test, items[i].addr & KI_UNSTABLE);
		KUNIT_EXPECT_EQ(test, items[i].addr & KI_PARITY,
				pass_parity());
		KUNIT_EXPECT_EQ(test, item_address(&items[i]),
				(unsigned long)(i + 1) << PAGE_SHIFT);
		KUNIT_EXPECT_TRUE(test, ksm_test_uholds(t, &items[i]));
	}

	/* Remove from the middle of the buckets' lists: the rest stay. */
	for (i = 0; i < n; i++)
		if (i / nkeys == 1)
			unstable_remove(t, &items[i]);
	KUNIT_EXPECT_EQ(test, t->count, n - nkeys);
	KUNIT_EXPECT_EQ(test, ksm_test_ucount(test, t), n - nkeys);
	for (i = 0; i < n; i++) {
		bool gone = i / nkeys == 1;

		KUNIT_EXPECT_EQ(test, ksm_test_uholds(t, &items[i]), !gone);
		KUNIT_EXPECT_EQ(test, !!(items[i].addr & KI_UNSTABLE), !gone);
	}

	for (i = 0; i < n; i++)
		if (i / nkeys != 1)
			unstable_remove(t, &items[i]);
	KUNIT_EXPECT_EQ(test, t->count, 0);
	KUNIT_EXPECT_EQ(test, ksm_test_ucount(test, t), 0);
	KUNIT_EXPECT_EQ(test, ksm_pages_unshared, unshared);
	for (i = 0; i < n; i++) {
		KUNIT_EXPECT_EQ(test, items[i].addr & ~PAGE_MASK, 0);
		KUNIT_EXPECT_EQ(test, item_address(&items[i]),
				(unsigned long)(i + 1) << PAGE_SHIFT);
	}
	mutex_unlock(&ksm_mutex);
}

/* The index grows at two entries per bucket and loses nothing doing so. */
static void ksm_test_unstable_grow(struct kunit *test)
{
	const unsigned int n = KSM_TEST_NR_GROW;
	const unsigned long first = 2UL << KSM_TABLE_MIN_BITS;
	struct ksm_utable *t = ksm_test_utable(test, KSM_TABLE_MIN_BITS);
	struct ksm_item *items = ksm_test_items(test, n);
	unsigned long unshared;
	unsigned int i, lost = 0;

	mutex_lock(&ksm_mutex);
	unshared = ksm_pages_unshared;
	for (i = 0; i < n; i++) {
		if (i == first)
			KUNIT_EXPECT_EQ(test, t->bits, KSM_TABLE_MIN_BITS);
		unstable_insert(t, &items[i], ksm_test_key(i % (n / 2)));
		if (i == first)
			KUNIT_EXPECT_EQ(test, t->bits, KSM_TABLE_MIN_BITS + 2);
	}
	KUNIT_EXPECT_EQ(test, t->bits, KSM_TABLE_MIN_BITS + 4);
	KUNIT_EXPECT_EQ(test, t->count, n);
	KUNIT_EXPECT_EQ(test, ksm_test_ucount(test, t), n);
	for (i = 0; i < n; i++)
		lost += !ksm_test_uholds(t, &items[i]);
	KUNIT_EXPECT_EQ(test, lost, 0);

	for (i = 0; i < n; i += 2)
		unstable_remove(t, &items[i]);
	for (i = 0; i < n; i++)
		lost += ksm_test_uholds(t, &items[i]) != (i & 1);
	KUNIT_EXPECT_EQ(test, lost, 0);
	for (i = 1; i < n; i += 2)
		unstable_remove(t, &items[i]);
	KUNIT_EXPECT_EQ(test, t->count, 0);
	KUNIT_EXPECT_EQ(test, ksm_test_ucount(test, t), 0);
	KUNIT_EXPECT_EQ(test, ksm_pages_unshared, unshared);
	mutex_unlock(&ksm_mutex);
}

/*
 * The end of a pass empties the index at once; its entries are then
 * dropped one by one, by their parity, without being looked for.
 */
static void ksm_test_unstable_pass_parity(struct kunit *test)
{
	struct ksm_utable *t = ksm_test_utable(test, KSM_TABLE_MIN_BITS);
	struct ksm_item *items = ksm_test_items(test, 4);
	struct ksm_item *a = &items[0], *b = &items[1], *c = &items[2];
	struct ksm_item *d = &items[3];
	unsigned long unshared, pass, i;
	struct ksm_key k = ksm_test_key(1), k2 = ksm_test_key(2);

	mutex_lock(&ksm_mutex);
	unshared = ksm_pages_unshared;
	pass = ksm_cursor.pass;

	unstable_insert(t, a, k);
	unstable_insert(t, b, k);
	unstable_insert(t, c, k2);
	KUNIT_EXPECT_EQ(test, t->count, 3);

	/* The pass ends, as in cursor_advance(). */
	unstable_reset(t);
	ksm_cursor.pass++;
	KUNIT_EXPECT_EQ(test, t->count, 0);
	for (i = 0; i < (1UL << t->bits); i++)
		KUNIT_EXPECT_NULL(test, t->bucket[i]);
	KUNIT_EXPECT_NE(test, a->addr & KI_PARITY, pass_parity());

	/*
	 * b is seen again: merge_scanned_page() takes it out for a look
	 * (unstable_recheck()), then indexes it again, and pages_unshared
	 * does not move meanwhile.
	 */
	unstable_recheck(t, b);
	KUNIT_EXPECT_FALSE(test, b->addr & KI_UNSTABLE);
	KUNIT_EXPECT_TRUE(test, b->addr & KI_COUNTED);
	KUNIT_EXPECT_EQ(test, ksm_pages_unshared, unshared + 3);
	unstable_insert(t, b, k);
	KUNIT_EXPECT_EQ(test, ksm_pages_unshared, unshared + 3);
	unstable_insert(t, d, k);
	KUNIT_EXPECT_EQ(test, b->addr & KI_PARITY, pass_parity());
	KUNIT_EXPECT_EQ(test, t->count, 2);

	/* Old entries leave without touching the new index. */
	unstable_remove(t, a);
	unstable_remove(t, c);
	KUNIT_EXPECT_EQ(test, t->count, 2);
	KUNIT_EXPECT_FALSE(test, a->addr & (KI_UNSTABLE | KI_PARITY));
	KUNIT_EXPECT_FALSE(test, c->addr & (KI_UNSTABLE | KI_PARITY));
	KUNIT_EXPECT_FALSE(test, ksm_test_uholds(t, a));
	KUNIT_EXPECT_TRUE(test, ksm_test_uholds(t, b));
	KUNIT_EXPECT_TRUE(test, ksm_test_uholds(t, d));
	KUNIT_EXPECT_EQ(test, ksm_test_ucount(test, t), 2);

	/* d is looked at and does not come back: it stops counting once. */
	unstable_recheck(t, d);
	item_uncount(d);
	KUNIT_EXPECT_FALSE(test, d->addr & (KI_UNSTABLE | KI_COUNTED));
	KUNIT_EXPECT_EQ(test, ksm_pages_unshared, unshared + 1);
	item_uncount(d);
	KUNIT_EXPECT_EQ(test, ksm_pages_unshared, unshared + 1);

	unstable_remove(t, b);
	KUNIT_EXPECT_EQ(test, t->count, 0);
	KUNIT_EXPECT_EQ(test, ksm_pages_unshared, unshared);

	ksm_cursor.pass = pass;
	mutex_unlock(&ksm_mutex);
}

/* ------------------------------------------------------------------ */
/* The stable index                                                    */
/* ------------------------------------------------------------------ */

static void ksm_test_free_stable(void *arg)
{
	struct ksm_stable *t = arg;

	kvfree(t->bucket);
}

static struct ksm_stable *ksm_test_stable(struct kunit *test)
{
	struct ksm_stable *t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, t);
	t->bits = KSM_TABLE_MIN_BITS;
	t->bucket = kvcalloc(1UL << t->bits, sizeof(*t->bucket), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, t->bucket);
	ksm_test_defer(test, ksm_test_free_stable, t);
	return t;
}

static struct ksm_node *ksm_test_nodes(struct kunit *test, unsigned int n,
				       unsigned int nkeys)
{
	struct ksm_node *nodes = kvcalloc(n, sizeof(*nodes), GFP_KERNEL);
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, nodes);
	ksm_test_defer(test, ksm_test_kvfree, nodes);
	for (i = 0; i < n; i++) {
		INIT_LIST_HEAD(&nodes[i].dups);
		nodes[i].key = ksm_test_key(i % nkeys);
	}
	return nodes;
}

/* Would a lookup of @key in @t meet @node?  Compares pointers only. */
static bool ksm_test_sholds(struct ksm_stable *t, struct ksm_node *node,
			    struct ksm_key key)
{
	struct ksm_node *p;

	hlist_for_each_entry(p, stable_bucket(t, key), hnode)
		if (p == node)
			return true;
	return false;
}

static unsigned long ksm_test_scount(struct kunit *test, struct ksm_stable *t)
{
	unsigned long i, n = 0;
	struct ksm_node *p;

	for (i = 0; i < (1UL << t->bits); i++) {
		hlist_for_each_entry(p, &t->bucket[i], hnode) {
			KUNIT_EXPECT_EQ(test, key_slot(p->key, t->bits), i);
			n++;
		}
	}
	return n;
}

static void ksm_test_stable_basic(struct kunit *test)
{
	const unsigned int n = 64, nkeys = 16;
	struct ksm_stable *t = ksm_test_stable(test);
	struct ksm_node *nodes = ksm_test_nodes(test, n, nkeys);
	unsigned int i;

	for (i = 0; i < n; i++)
		stable_insert(t, &nodes[i]);
	KUNIT_EXPECT_EQ(test, t->count, n);
	KUNIT_EXPECT_EQ(test, ksm_test_scount(test, t), n);
	for (i = 0; i < n; i++) {
		struct ksm_key k = ksm_test_key(i % nkeys);

		KUNIT_EXPECT_TRUE(test, ksm_test_sholds(t, &nodes[i], k));
	}

	for (i = nkeys; i < 2 * nkeys; i++)
		stable_remove(t, &nodes[i]);
	KUNIT_EXPECT_EQ(test, t->count, n - nkeys);
	KUNIT_EXPECT_EQ(test, ksm_test_scount(test, t), n - nkeys);
	for (i = 0; i < n; i++)
		KUNIT_EXPECT_EQ(test, ksm_test_sholds(t, &nodes[i],
						      nodes[i].key),
				i < nkeys || i >= 2 * nkeys);

	for (i = 0; i < n; i++)
		if (i < nkeys || i >= 2 * nkeys)
			stable_remove(t, &nodes[i]);
	KUNIT_EXPECT_EQ(test, t->count, 0);
	KUNIT_EXPECT_EQ(test, ksm_test_scount(test, t), 0);
}

static void ksm_test_stable_grow(struct kunit *test)
{
	const unsigned int n = KSM_TEST_NR_GROW;
	const unsigned long first = 2UL << KSM_TABLE_MIN_BITS;
	struct ksm_stable *t = ksm_test_stable(test);
	struct ksm_node *nodes = ksm_test_nodes(test, n, n / 2);
	unsigned int i, lost = 0;

	for (i = 0; i < n; i++) {
		if (i == first)
			KUNIT_EXPECT_EQ(test, t->bits, KSM_TABLE_MIN_BITS);
		stable_insert(t, &nodes[i]);
		if (i == first)
			KUNIT_EXPECT_EQ(test, t->bits, KSM_TABLE_MIN_BITS + 2);
	}
	KUNIT_EXPECT_EQ(test, t->bits, KSM_TABLE_MIN_BITS + 4);
	KUNIT_EXPECT_EQ(test, t->count, n);
	KUNIT_EXPECT_EQ(test, ksm_test_scount(test, t), n);
	for (i = 0; i < n; i++)
		lost += !ksm_test_sholds(t, &nodes[i], nodes[i].key);
	KUNIT_EXPECT_EQ(test, lost, 0);

	for (i = 0; i < n; i++)
		stable_remove(t, &nodes[i]);
	KUNIT_EXPECT_EQ(test, t->count, 0);
	KUNIT_EXPECT_EQ(test, ksm_test_scount(test, t), 0);
}

/* ------------------------------------------------------------------ */
/* Chains of duplicates                                                */
/* ------------------------------------------------------------------ */

/* A stand-in KSM page and its node. */
struct ksm_test_copy {
	struct page *page;
	struct ksm_node *node;	/* NULL once freed */
	struct ksm_key key;
	bool indexed;		/* was put in ksm_stable */
};

static void ksm_test_free_copy(void *arg)
{
	struct ksm_test_copy *c = arg;

	/* Only nodes that never were in the index are left to free. */
	if (c->node)
		kmem_cache_free(ksm_node_cache, c->node);
}

/* @n KSM pages of content @seed on node @nid, not in the index yet. */
static struct ksm_test_copy *ksm_test_copies_on(struct kunit *test,
						unsigned int n, int nid,
						u32 seed)
{
	struct ksm_test_copy *copies, *c;

	copies = kunit_kcalloc(test, n, sizeof(*copies), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, copies);
	for (c = copies; c < copies + n; c++) {
		c->page = ksm_test_page_on(test, nid, seed);
		c->node = kmem_cache_zalloc(ksm_node_cache, GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, c->node);
		ksm_test_defer(test, ksm_test_free_copy, c);
		INIT_LIST_HEAD(&c->node->dups);
		c->key.hash = page_content_hash(c->page);
		c->key.domain = KSM_TEST_DOMAIN;
		c->node->key = c->key;
		c->node->domain = KSM_TEST_DOMAIN;
		c->node->kpfn = page_to_pfn(c->page);
		folio_set_ksm_node(page_folio(c->page), c->node);
	}
	return copies;
}

static struct ksm_test_copy *ksm_test_copies(struct kunit *test,
					     unsigned int n, u32 seed)
{
	return ksm_test_copies_on(test, n, NUMA_NO_NODE, seed);
}

/* ksm_mutex held, from here on. */
static void ksm_test_index(struct ksm_test_copy *c)
{
	stable_insert(&ksm_stable, c->node);
	c->indexed = true;
}

static bool ksm_test_indexed(struct ksm_test_copy *c)
{
	return c->node && ksm_test_sholds(&ksm_stable, c->node, c->key);
}

/* The KSM page is freed: its node goes stale. */
static void ksm_test_page_gone(struct ksm_test_copy *c)
{
	WRITE_ONCE(c->page->mapping, NULL);
}

/* Take the copies out of the engine, leaving it as it was found. */
static void ksm_test_unindex(struct ksm_test_copy *copies, unsigned int n)
{
	struct ksm_test_copy *c;

	for (c = copies; c < copies + n; c++) {
		if (!c->indexed)
			continue;
		/* The engine may have freed the node of a gone page. */
		if (ksm_test_indexed(c)) {
			c->node->nr_maps = 0;	/* none were real */
			node_free(c->node);
		}
		c->node = NULL;
	}
}

static bool ksm_test_in_chain(struct ksm_node *node, struct ksm_node *member)
{
	struct ksm_node *p;

	list_for_each_entry(p, &member->dups, dups)
		if (p == node)
			return true;
	return false;
}

/*
 * Look @page up in the stable index: return which of @copies takes the
 * new mapping (-1: none), and in *@full which is reported full (-1: none,
 * -2: a node not among @copies).
 */
static int ksm_test_find(struct ksm_test_copy *copies, int n,
			 struct page *page, struct ksm_key key, int *full)
{
	struct ksm_node *fnode;
	struct folio *folio;
	int i, found = n;

	folio = stable_find(page, key, key.domain, true, &fnode);
	*full = fnode ? -2 : -1;
	for (i = 0; i < n; i++) {
		if (copies[i].node && fnode == copies[i].node)
			*full = i;
		if (folio && folio == page_folio(copies[i].page))
			found = i;
	}
	if (folio)
		folio_put(folio);
	return folio ? found : -1;
}

/*
 * A KSM page with room takes the mapping.  One with equal key but other
 * content, or with equal content but in another domain, is no match.
 */
static void ksm_test_chain_head(struct kunit *test)
{
	struct ksm_test_copy *h = ksm_test_copies(test, 1, 10);
	struct page *same = ksm_test_page(test, 10);
	struct page *other = ksm_test_page(test, 11);
	struct ksm_key k = h->key, kd = { k.hash, k.domain + 1 };
	int full;

	mutex_lock(&ksm_mutex);
	ksm_test_index(h);

	h->node->nr_maps = ksm_max_sharing - 1;
	KUNIT_EXPECT_EQ(test, ksm_test_find(h, 1, same, k, &full), 0);
	KUNIT_EXPECT_EQ(test, full, -1);

	/* Full: nothing takes it, and the caller learns which is full. */
	h->node->nr_maps = ksm_max_sharing;
	KUNIT_EXPECT_EQ(test, ksm_test_find(h, 1, same, k, &full), -1);
	KUNIT_EXPECT_EQ(test, full, 0);

	/* A hash collision: whole pages are compared. */
	h->node->nr_maps = 2;
	KUNIT_EXPECT_EQ(test, ksm_test_find(h, 1, other, k, &full), -1);
	KUNIT_EXPECT_EQ(test, full, -1);

	/* Another merge domain. */
	KUNIT_EXPECT_EQ(test, ksm_test_find(h, 1, same, kd, &full), -1);
	KUNIT_EXPECT_EQ(test, full, -1);

	/* A KSM page that is gone is forgotten by the lookup. */
	ksm_test_page_gone(h);
	h->node->nr_maps = 0;
	KUNIT_EXPECT_EQ(test, ksm_test_find(h, 1, same, k, &full), -1);
	KUNIT_EXPECT_EQ(test, full, -1);
	KUNIT_EXPECT_FALSE(test, ksm_test_indexed(h));

	ksm_test_unindex(h, 1);
	mutex_unlock(&ksm_mutex);
}

/*
 * When the KSM page with some content is full, the next merge of that
 * content makes a new KSM page, which joins the full one's chain.
 */
static void ksm_test_chain_new_dup(struct kunit *test)
{
	struct ksm_test_copy *c = ksm_test_copies(test, 3, 20);
	struct ksm_test_copy *g = ksm_test_copies(test, 2, 21);
	struct ksm_test_copy *x = ksm_test_copies(test, 1, 22);
	struct page *page = ksm_test_page(test, 20);
	unsigned long chains, dups;
	int full;

	mutex_lock(&ksm_mutex);
	chains = ksm_nr_chains;
	dups = ksm_nr_dups;

	ksm_test_index(&c[0]);
	c[0].node->nr_maps = ksm_max_sharing;
	KUNIT_EXPECT_EQ(test, ksm_test_find(c, 3, page, c->key, &full), -1);
	KUNIT_EXPECT_EQ(test, full, 0);

	/* merge_pair() made c[1] from @page and another page. */
	ksm_test_index(&c[1]);
	c[1].node->nr_maps = 2;
	chain_add_dup(c[1].node, c[0].node, c[1].page);
	KUNIT_EXPECT_EQ(test, ksm_nr_chains, chains + 1);
	KUNIT_EXPECT_EQ(test, ksm_nr_dups, dups + 2);
	KUNIT_EXPECT_TRUE(test, ksm_test_in_chain(c[1].node, c[0].node));
	KUNIT_EXPECT_TRUE(test, ksm_test_in_chain(c[0].node, c[1].node));
	KUNIT_EXPECT_EQ(test, ksm_test_find(c, 3, page, c->key, &full), 1);
	KUNIT_EXPECT_EQ(test, full, -1);

	/* Both full: a third copy joins the same chain. */
	c[1].node->nr_maps = ksm_max_sharing;
	KUNIT_EXPECT_EQ(test, ksm_test_find(c, 3, page, c->key, &full), -1);
	KUNIT_EXPECT_TRUE(test, full == 0 || full == 1);
	ksm_test_index(&c[2]);
	c[2].node->nr_maps = 2;
	chain_add_dup(c[2].node, c[full < 0 ? 0 : full].node, c[2].page);
	KUNIT_EXPECT_EQ(test, ksm_nr_chains, chains + 1);
	KUNIT_EXPECT_EQ(test, ksm_nr_dups, dups + 3);
	KUNIT_EXPECT_TRUE(test, ksm_test_in_chain(c[2].node, c[0].node));
	KUNIT_EXPECT_TRUE(test, ksm_test_in_chain(c[2].node, c[1].node));
	KUNIT_EXPECT_EQ(test, ksm_test_find(c, 3, page, c->key, &full), 2);

	/* A node is never its own duplicate. */
	chain_add_dup(c[2].node, c[2].node, c[2].page);
	KUNIT_EXPECT_EQ(test, ksm_nr_dups, dups + 3);

	/* The full copy went away meanwhile: no chain, and it is freed. */
	ksm_test_index(&g[0]);
	ksm_test_index(&g[1]);
	ksm_test_page_gone(&g[0]);
	chain_add_dup(g[1].node, g[0].node, g[1].page);
	KUNIT_EXPECT_FALSE(test, ksm_test_indexed(&g[0]));
	KUNIT_EXPECT_TRUE(test, list_empty(&g[1].node->dups));

	/* The full copy has other content: no chain. */
	ksm_test_index(x);
	chain_add_dup(x->node, g[1].node, x->page);
	KUNIT_EXPECT_TRUE(test, list_empty(&x->node->dups));
	KUNIT_EXPECT_EQ(test, ksm_nr_chains, chains + 1);
	KUNIT_EXPECT_EQ(test, ksm_nr_dups, dups + 3);

	ksm_test_unindex(x, 1);
	ksm_test_unindex(g, 2);
	ksm_test_unindex(c, 3);
	KUNIT_EXPECT_EQ(test, ksm_nr_chains, chains);
	KUNIT_EXPECT_EQ(test, ksm_nr_dups, dups);
	mutex_unlock(&ksm_mutex);
}

/*
 * Which copy of a chain takes a new mapping: one with room, never a full
 * one nor one whose page is gone; when all are full, none.
 */
static void ksm_test_chain_pick(struct kunit *test)
{
	struct ksm_test_copy *c = ksm_test_copies(test, 4, 30);
	struct page *page = ksm_test_page(test, 30);
	struct ksm_key k = c->key;
	unsigned int i;
	int full;

	mutex_lock(&ksm_mutex);
	for (i = 0; i < 4; i++) {
		ksm_test_index(&c[i]);
		c[i].node->nr_maps = ksm_max_sharing;
		if (i)
			chain_join(c[i].node, c[0].node);
	}

	/* Only one copy has room: it takes the mapping. */
	for (i = 0; i < 4; i++) {
		c[i].node->nr_maps = ksm_max_sharing - 1;
		KUNIT_EXPECT_EQ_MSG(test, ksm_test_find(c, 4, page, k, &full),
				    i, "room in copy %u", i);
		KUNIT_EXPECT_EQ(test, full, -1);
		c[i].node->nr_maps = ksm_max_sharing;
	}

	/* All full: the caller learns one of them, to chain a new one. */
	KUNIT_EXPECT_EQ(test, ksm_test_find(c, 4, page, k, &full), -1);
	KUNIT_EXPECT_TRUE(test, full >= 0 && full < 4);

	/*
	 * A copy with room whose page is gone is passed over.  The index
	 * finds the newest copy first, c[3]; c[1] comes before c[2] in
	 * the chain after it.
	 */
	c[1].node->nr_maps = 0;
	ksm_test_page_gone(&c[1]);
	c[2].node->nr_maps = 1;
	KUNIT_EXPECT_EQ(test, ksm_test_find(c, 4, page, k, &full), 2);
	c[2].node->nr_maps = ksm_max_sharing;
	KUNIT_EXPECT_EQ(test, ksm_test_find(c, 4, page, k, &full), -1);
	KUNIT_EXPECT_TRUE(test, full == 0 || full == 2 || full == 3);

	ksm_test_unindex(c, 4);
	mutex_unlock(&ksm_mutex);
}

#ifdef CONFIG_NUMA
/* With merge_across_nodes=0 only a copy on the page's node qualifies. */
static void ksm_test_chain_pick_node(struct kunit *test)
{
	struct ksm_test_copy *c0, *c1;
	struct page *p0, *p1;
	unsigned int across;
	int n0, n1, full;

	n0 = first_node(node_states[N_MEMORY]);
	n1 = next_node(n0, node_states[N_MEMORY]);
	if (n1 >= MAX_NUMNODES)
		kunit_skip(test, "needs two nodes with memory");

	/* c0[0] on n0 is full; c1[0] on n1 and c0[1] on n0 have room. */
	c0 = ksm_test_copies_on(test, 2, n0, 40);
	c1 = ksm_test_copies_on(test, 1, n1, 40);
	p0 = ksm_test_page_on(test, n0, 40);
	p1 = ksm_test_page_on(test, n1, 40);

	mutex_lock(&ksm_mutex);
	across = ksm_across_nodes;
	ksm_across_nodes = 0;
	ksm_test_index(&c0[1]);
	ksm_test_index(&c1[0]);
	ksm_test_index(&c0[0]);
	chain_join(c1[0].node, c0[0].node);
	chain_join(c0[1].node, c0[0].node);
	c0[0].node->nr_maps = ksm_max_sharing;
	c0[1].node->nr_maps = 2;
	c1[0].node->nr_maps = 2;

	KUNIT_EXPECT_EQ(test, ksm_test_find(c0, 2, p0, c0->key, &full), 1);
	KUNIT_EXPECT_EQ(test, ksm_test_find(c1, 1, p1, c1->key, &full), 0);
	c0[1].node->nr_maps = ksm_max_sharing;
	KUNIT_EXPECT_EQ(test, ksm_test_find(c0, 2, p0, c0->key, &full), -1);
	KUNIT_EXPECT_EQ(test, ksm_test_find(c1, 1, p1, c1->key, &full), 0);

	/* Across nodes, the copy on the other node will do. */
	ksm_across_nodes = 1;
	KUNIT_EXPECT_EQ(test, ksm_test_find(c1, 1, p0, c0->key, &full), 0);

	ksm_across_nodes = across;
	ksm_test_unindex(c0, 2);
	ksm_test_unindex(c1, 1);
	mutex_unlock(&ksm_mutex);
}
#endif

/*
 * Pruning frees the nodes of gone KSM pages that are in chains or have
 * no mappings; a lone KSM page with mappings is left to ksmd's scan.
 */
static void ksm_test_chain_prune(struct kunit *test)
{
	struct ksm_test_copy *c = ksm_test_copies(test, 3, 50);
	struct ksm_test_copy *lone[3];
	unsigned long chains, dups;
	unsigned int i;

	for (i = 0; i < 3; i++)
		lone[i] = ksm_test_copies(test, 1, 51 + i);

	mutex_lock(&ksm_mutex);
	chains = ksm_nr_chains;
	dups = ksm_nr_dups;
	for (i = 0; i < 3; i++) {
		ksm_test_index(&c[i]);
		ksm_test_index(lone[i]);
		if (i)
			chain_join(c[i].node, c[0].node);
	}
	c[0].node->nr_maps = 3;
	c[2].node->nr_maps = 2;
	lone[2]->node->nr_maps = 5;
	KUNIT_EXPECT_EQ(test, ksm_nr_chains, chains + 1);
	KUNIT_EXPECT_EQ(test, ksm_nr_dups, dups + 3);

	/* Nothing is gone: nothing is pruned. */
	stable_prune_all();
	for (i = 0; i < 3; i++) {
		KUNIT_EXPECT_TRUE(test, ksm_test_indexed(&c[i]));
		KUNIT_EXPECT_TRUE(test, ksm_test_indexed(lone[i]));
	}
	KUNIT_EXPECT_EQ(test, ksm_nr_dups, dups + 3);

	ksm_test_page_gone(&c[1]);	/* a dup without mappings */
	ksm_test_page_gone(lone[1]);	/* a lone node without mappings */
	ksm_test_page_gone(lone[2]);	/* a lone node with mappings */
	stable_prune_all();
	KUNIT_EXPECT_TRUE(test, ksm_test_indexed(&c[0]));
	KUNIT_EXPECT_FALSE(test, ksm_test_indexed(&c[1]));
	KUNIT_EXPECT_TRUE(test, ksm_test_indexed(&c[2]));
	KUNIT_EXPECT_TRUE(test, ksm_test_indexed(lone[0]));
	KUNIT_EXPECT_FALSE(test, ksm_test_indexed(lone[1]));
	KUNIT_EXPECT_TRUE(test, ksm_test_indexed(lone[2]));
	KUNIT_EXPECT_EQ(test, ksm_nr_chains, chains + 1);
	KUNIT_EXPECT_EQ(test, ksm_nr_dups, dups + 2);
	KUNIT_EXPECT_TRUE(test, ksm_test_in_chain(c[2].node, c[0].node));
	KUNIT_EXPECT_TRUE(test, list_is_singular(&c[0].node->dups));

	/* The last dup goes: the chain is no more. */
	c[2].node->nr_maps = 0;
	ksm_test_page_gone(&c[2]);
	stable_prune_all();
	KUNIT_EXPECT_FALSE(test, ksm_test_indexed(&c[2]));
	KUNIT_EXPECT_TRUE(test, list_empty(&c[0].node->dups));
	KUNIT_EXPECT_EQ(test, ksm_nr_chains, chains);
	KUNIT_EXPECT_EQ(test, ksm_nr_dups, dups);

	ksm_test_unindex(c, 3);
	for (i = 0; i < 3; i++)
		ksm_test_unindex(lone[i], 1);
	mutex_unlock(&ksm_mutex);
}

static struct kunit_case ksm_test_cases[] = {
	KUNIT_CASE(ksm_test_key_equal_pages),
	KUNIT_CASE(ksm_test_key_one_bit),
	KUNIT_CASE(ksm_test_pages_equal),
	KUNIT_CASE(ksm_test_key_domain),
	KUNIT_CASE(ksm_test_domain_tags),
	KUNIT_CASE(ksm_test_key_zero_page),
	KUNIT_CASE(ksm_test_unstable_basic),
	KUNIT_CASE(ksm_test_unstable_grow),
	KUNIT_CASE(ksm_test_unstable_pass_parity),
	KUNIT_CASE(ksm_test_stable_basic),
	KUNIT_CASE(ksm_test_stable_grow),
	KUNIT_CASE(ksm_test_chain_head),
	KUNIT_CASE(ksm_test_chain_new_dup),
	KUNIT_CASE(ksm_test_chain_pick),
#ifdef CONFIG_NUMA
	KUNIT_CASE(ksm_test_chain_pick_node),
#endif
	KUNIT_CASE(ksm_test_chain_prune),
	{}
};

static struct kunit_suite ksm_test_suite = {
	.name = "ksm",
	.test_cases = ksm_test_cases,
};

kunit_test_suite(ksm_test_suite);
