/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The harness of the in-VM tests: checks, notes, children and the pipes
 * between them.  Nothing here knows about KSM (ksm_lib.h does).
 *
 * A test prints KTAP as the kernel's kselftests do (TAP version 13):
 *
 *	TAP version 13
 *	ok 1 - what was checked
 *	not ok 2 - what was checked, and what was found
 *	# a diagnostic
 *	1..2
 *	# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0
 *
 * and exits 0 (pass), 1 (fail) or 4 (skip: "1..0 # SKIP why" when it
 * checked nothing, else "ok N # SKIP why" before the plan); test-vm/init
 * judges by the exit code alone.  The
 * plan comes last, at exit, because a test learns how many checks it
 * made only then (ksm_lib.h's restore at exit checks too).
 *
 * Only the test's own process numbers its checks.  A child (kt_fork(),
 * kt_spawn(), or a program the test exec'd) prints its checks as
 * diagnostics, "# <who>ok - ..." and "# <who>not ok - ...", and reports
 * them to its parent through a pipe or its exit status, which the parent
 * then checks: the children's lines cannot disturb the numbering.
 */
#ifndef KTAP_H
#define KTAP_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define KT_PASS	0
#define KT_FAIL	1
#define KT_SKIP	4

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#endif

/* Set in the test's process, inherited by what it execs. */
#define KT_ENV_TOP	"KT_TOP_PID"

static int kt_failures;			/* failed checks of this process */
static int kt_skips;			/* checks skipped (at most one) */
static int kt_n;			/* checks numbered so far */
static const char *kt_who = "";		/* prefix of a child's lines */
static pid_t kt_top;			/* the process that numbers checks */
static int kt_started, kt_ended;	/* version line, plan printed */
static const char *kt_skip_why;		/* kt_skip()'s reason, for the end */

static inline int kt_is_top(void)
{
	return kt_top && getpid() == kt_top;
}

/* The version line, once, before the first line of the top process. */
static inline void kt_start(void)
{
	if (kt_started || !kt_is_top())
		return;
	kt_started = 1;
	printf("TAP version 13\n");
	fflush(stdout);
}

/* The plan and kselftest's totals, at exit of the top process. */
static inline void kt_end(void)
{
	if (!kt_is_top() || kt_ended || (!kt_started && !kt_skip_why))
		return;		/* a helper program that printed nothing */
	kt_start();
	kt_ended = 1;
	if (kt_skip_why && !kt_n) {
		printf("1..0 # SKIP %s\n", kt_skip_why);
		fflush(stdout);
		return;
	}
	if (kt_skip_why) {
		printf("ok %d # SKIP %s\n", ++kt_n, kt_skip_why);
		kt_skips++;
	}
	printf("1..%d\n", kt_n);
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n",
	       kt_n - kt_failures - kt_skips, kt_failures, kt_skips);
	fflush(stdout);
}

/*
 * Runs before main(): the process started by test-vm/init is the top one;
 * one exec'd by a test finds KT_ENV_TOP set and is a child.  kt_end() is
 * registered first, so that it runs after every other atexit handler.
 */
__attribute__((constructor)) static void kt_init(void)
{
	char pid[16];

	if (getenv(KT_ENV_TOP))
		return;
	kt_top = getpid();
	snprintf(pid, sizeof(pid), "%d", (int)kt_top);
	setenv(KT_ENV_TOP, pid, 1);
	atexit(kt_end);
}

/* One result line: numbered in the top process, a diagnostic elsewhere. */
static inline void kt_result(int ok, const char *fmt, va_list ap)
{
	if (kt_is_top()) {
		kt_start();
		printf("%s %d - %s", ok ? "ok" : "not ok", ++kt_n, kt_who);
	} else {
		printf("# %s%s - ", kt_who, ok ? "ok" : "not ok");
	}
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		kt_failures++;
}

static inline __attribute__((format(printf, 2, 3)))
void kt_check(int ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kt_result(ok, fmt, ap);
	va_end(ap);
}

static inline __attribute__((format(printf, 1, 2)))
void kt_note(const char *fmt, ...)
{
	va_list ap;

	kt_start();
	va_start(ap, fmt);
	printf("# %s", kt_who);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

/* main's return value; the plan follows at exit. */
static inline int kt_exit(void)
{
	return kt_failures ? KT_FAIL : KT_PASS;
}

/*
 * Skip the rest of the test (kselftest's ksft_exit_skip()): the top
 * process says so with its plan at exit, after what runs at exit (the
 * KSM state put back) has had its checks; a child says why and exits 4.
 */
static inline __attribute__((noreturn)) void kt_skip(const char *why)
{
	if (kt_is_top())
		kt_skip_why = why;
	else
		printf("# %sskip: %s\n", kt_who, why);
	fflush(stdout);
	exit(KT_SKIP);
}

/* A failure the test cannot go on after: what failed, and errno. */
static inline __attribute__((noreturn)) void kt_die(const char *what)
{
	const char *err = strerror(errno);

	kt_check(0, "%s: %s", what, err);
	exit(KT_FAIL);
}

/* A child reports its checks through its exit status. */
static inline __attribute__((noreturn)) void kt_child_exit(void)
{
	fflush(stdout);
	_exit(kt_failures ? 1 : 0);
}

/* ---- children ------------------------------------------------------- */

#define KT_MAX_KIDS 256
static pid_t kt_kids[KT_MAX_KIDS];
static int kt_nkids;

/* fork(), remembering the child so that it is killed if the test dies. */
static inline pid_t kt_fork(void)
{
	pid_t pid;

	kt_start();
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		kt_die("fork");
	if (!pid) {
		kt_nkids = 0;
		kt_failures = 0;	/* a child counts its own */
		return 0;
	}
	if (kt_nkids < KT_MAX_KIDS)
		kt_kids[kt_nkids++] = pid;
	return pid;
}

static inline void kt_forget(pid_t pid)
{
	int i;

	for (i = 0; i < kt_nkids; i++)
		if (kt_kids[i] == pid)
			kt_kids[i] = kt_kids[--kt_nkids];
}

/* Wait for a child; its exit code, or 128 + signal. */
static inline int kt_join(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	kt_forget(pid);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static inline void kt_kill_kids(void)
{
	while (kt_nkids) {
		kill(kt_kids[0], SIGKILL);
		kt_join(kt_kids[0]);
	}
}

/* ---- pipes ---------------------------------------------------------- */

/*
 * A child with two pipes: the parent sends on ->down and reads ->up, the
 * child the reverse.  kt_spawn() returns 0 in the child, 1 in the parent.
 */
struct kt_proc {
	pid_t pid;
	int down, up;
};

/*
 * The parent's ends of the pipes of every child: a later child must not
 * keep them open, or an earlier one would never see end of file.
 */
static int kt_fds[2 * KT_MAX_KIDS];
static int kt_nfds;

static inline void kt_fd_forget(int fd)
{
	int i;

	for (i = 0; i < kt_nfds; i++)
		if (kt_fds[i] == fd)
			kt_fds[i] = kt_fds[--kt_nfds];
}

static inline int kt_spawn(struct kt_proc *p)
{
	int d[2], u[2];

	if (pipe(d) || pipe(u))
		kt_die("pipe");
	p->pid = kt_fork();
	if (!p->pid) {
		while (kt_nfds)
			close(kt_fds[--kt_nfds]);
		close(d[1]);
		close(u[0]);
		p->down = d[0];
		p->up = u[1];
		return 0;
	}
	close(d[0]);
	close(u[1]);
	p->down = d[1];
	p->up = u[0];
	if (kt_nfds + 2 <= 2 * KT_MAX_KIDS) {
		kt_fds[kt_nfds++] = p->down;
		kt_fds[kt_nfds++] = p->up;
	}
	return 1;
}

static inline int kt_put(int fd, long v)
{
	return write(fd, &v, sizeof(v)) == sizeof(v) ? 0 : -1;
}

/* Next number from a pipe; -1 at end of file. */
static inline long kt_get(int fd)
{
	long v;

	return read(fd, &v, sizeof(v)) == sizeof(v) ? v : -1;
}

/*
 * Spawn @n children one after the other, each one's setup answered (0 on
 * its ->up pipe) before the next is started.  Returns the child's index
 * in a child, -1 in the parent once all are set up.
 */
static inline int kt_spawn_ready(struct kt_proc *kid, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (!kt_spawn(&kid[i]))
			return i;
		if (kt_get(kid[i].up) != 0)
			kt_die("child setup");
	}
	return -1;
}

/* Parent: send @cmd to a child and wait for its answer. */
static inline long kt_ask(struct kt_proc *p, long cmd)
{
	if (kt_put(p->down, cmd))
		return -1;
	return kt_get(p->up);
}

/* Parent: close the pipes and reap the child; its exit code. */
static inline int kt_finish(struct kt_proc *p)
{
	kt_fd_forget(p->down);
	kt_fd_forget(p->up);
	close(p->down);
	close(p->up);
	return kt_join(p->pid);
}

/* Memory visible to parent and children, never mergeable (shared). */
static inline void *kt_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		kt_die("mmap(MAP_SHARED)");
	memset(p, 0, len);
	return p;
}

#endif /* KTAP_H */
