/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the in-VM tests.  A test prints what it checks and
 * exits 0 (pass), 1 (fail) or 4 (skip, the kselftest convention).
 */
#ifndef KTEST_H
#define KTEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KT_PASS	0
#define KT_FAIL	1
#define KT_SKIP	4

static int kt_failures;

static inline void kt_check(int ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("%s: ", ok ? "ok" : "not ok");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (!ok)
		kt_failures++;
}

static inline int kt_exit(void)
{
	printf("%d check(s) failed\n", kt_failures);
	return kt_failures ? KT_FAIL : KT_PASS;
}

static inline __attribute__((noreturn)) void kt_skip(const char *why)
{
	printf("skip: %s\n", why);
	exit(KT_SKIP);
}

static inline __attribute__((noreturn)) void kt_die(const char *what)
{
	printf("not ok: %s: %s\n", what, strerror(errno));
	exit(KT_FAIL);
}

/* Read a number from a sysfs or proc file; -1 when absent. */
static inline long kt_read_long(const char *path)
{
	char buf[64] = "";
	long v = -1;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) > 0)
		v = strtol(buf, NULL, 10);
	close(fd);
	return v;
}

/* Write a string to a file; returns 0 or -errno. */
static inline int kt_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* A /proc/vmstat counter; -1 when absent. */
static inline long kt_vmstat(const char *name)
{
	char key[64];
	long v, found = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", key, &v) == 2)
		if (!strcmp(key, name))
			found = v;
	fclose(f);
	return found;
}

/* Physical frame of a virtual address from /proc/self/pagemap (root). */
static inline uint64_t kt_pfn(const void *addr)
{
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	off_t off = (uintptr_t)addr / getpagesize() * sizeof(ent);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent), off) != sizeof(ent))
		ent = 0;
	close(fd);
	return (ent & (1ULL << 63)) ? ent & ((1ULL << 55) - 1) : 0;
}

static inline int kt_swapped(const void *addr)
{
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	off_t off = (uintptr_t)addr / getpagesize() * sizeof(ent);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent), off) != sizeof(ent))
		ent = 0;
	close(fd);
	return !!(ent & (1ULL << 62));
}

/* Fill a page with a pattern derived from a seed, reproducibly. */
static inline void kt_fill(void *page, size_t len, uint64_t seed)
{
	uint64_t *w = page;
	size_t i;

	for (i = 0; i < len / sizeof(*w); i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		w[i] = seed;
	}
}

#define KSM_DIR "/sys/kernel/mm/ksm/"

static inline long ksm_get(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	return kt_read_long(path);
}

static inline int ksm_set(const char *name, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	return kt_write(path, val);
}

static inline int ksm_set_long(const char *name, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	return ksm_set(name, buf);
}

static inline void ksm_require(void)
{
	if (access(KSM_DIR "run", F_OK))
		kt_skip("this kernel has no KSM");
	if (geteuid())
		kt_skip("needs root");
}

/* Let ksmd finish @n more full scans; 0 on success, -1 on timeout. */
static inline int ksm_wait_scans(int n, int seconds)
{
	long start = ksm_get("full_scans");
	int i;

	for (i = 0; i < seconds * 20; i++) {
		if (ksm_get("full_scans") >= start + n)
			return 0;
		usleep(50000);
	}
	return -1;
}

#endif /* KTEST_H */
