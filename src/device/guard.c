/* SPDX-License-Identifier: MIT */
/*
 * Guarded copies to and from a client's mapped memory. A client that
 * truncates the file behind a DMA window it mapped makes the next access
 * to the missing pages raise SIGBUS. Where the file can be sealed the
 * library seals it against shrinking (dma.c); where it cannot, every copy
 * the library makes runs under a guard: a per-thread record of the mapping
 * being accessed and a jump buffer. The library's SIGBUS handler, installed
 * once per process, jumps back only when the faulting thread is inside a
 * guarded copy and the address lies in that copy's mapping; any other
 * SIGBUS goes to the handler that was installed before ours, or gets the
 * default action.
 *
 * The handler only reads its own thread's guard pointer (initial-exec TLS:
 * no allocation on access) and calls siglongjmp, or hands over to the
 * previous handler. The guarded side keeps the signal mask out of
 * sigsetjmp (no system call on the common path) and unblocks SIGBUS itself
 * after a jump.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

struct guard {
	sigjmp_buf env;
	uintptr_t lo, hi; /* the mapping being accessed */
};

static __thread struct guard *volatile cur_guard
	__attribute__((tls_model("initial-exec")));
static struct sigaction prev_bus;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;
static int bus_err;

/* A SIGBUS that is not ours: what would have happened without us. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	if (prev_bus.sa_flags & SA_SIGINFO) {
		prev_bus.sa_sigaction(sig, si, uc);
		return;
	}
	if (prev_bus.sa_handler != SIG_DFL && prev_bus.sa_handler != SIG_IGN) {
		prev_bus.sa_handler(sig);
		return;
	}
	if (prev_bus.sa_handler == SIG_IGN && si->si_code <= 0)
		return; /* a sent SIGBUS that the process ignores */
	/* The default action. A fault repeats when we return and then kills
	 * the process; a sent signal is raised again (it is blocked until
	 * we return). */
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGBUS, &dfl, NULL);
	if (si->si_code <= 0)
		raise(SIGBUS);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct guard *g = cur_guard;
	uintptr_t a = (uintptr_t)si->si_addr;

	if (g && si->si_code > 0 && a >= g->lo && a < g->hi) {
		cur_guard = NULL;
		siglongjmp(g->env, 1);
	}
	chain(sig, si, uc);
}

static void install(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO | SA_ONSTACK };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &prev_bus) < 0)
		bus_err = -errno;
}

int dev_guard_init(void)
{
	pthread_once(&bus_once, install);
	return bus_err;
}

int dev_guarded_copy(void *dst, const void *src, size_t len, const void *map,
		     size_t map_len)
{
	struct guard g;

	g.lo = (uintptr_t)map;
	g.hi = g.lo + map_len;
	if (sigsetjmp(g.env, 0)) {
		sigset_t bus;

		/* Jumped out of the handler, with SIGBUS still blocked. */
		sigemptyset(&bus);
		sigaddset(&bus, SIGBUS);
		pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
		return -EFAULT;
	}
	cur_guard = &g;
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(dst, src, len);
	atomic_signal_fence(memory_order_seq_cst);
	cur_guard = NULL;
	return 0;
}
