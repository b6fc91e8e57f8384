/* SPDX-License-Identifier: MIT */
/*
 * The v2 migration next-hop table checked against an independent
 * breadth-first search over the single arcs the uAPI defines, for every
 * feature combination and every (from, to) pair.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "protocol/migfsm.h"

#define NS VFW_MIG_STATE_NUM
#define F_SC VFW_MIGRATION_STOP_COPY
#define F_P2P VFW_MIGRATION_P2P
#define F_PRE VFW_MIGRATION_PRE_COPY

enum { ER, ST, RU, SC, RE, RP, PC, PP };

struct arc {
	int from, to;
	uint64_t needs;   /* features the arc needs */
	uint64_t without; /* features whose presence removes the arc */
};

/* The uAPI's single arcs, written independently of the next-hop table. */
static const struct arc arcs[] = {
	{ RU, ST, F_SC, F_P2P },	 { ST, RU, F_SC, F_P2P },
	{ ST, SC, F_SC, 0 },		 { SC, ST, F_SC, 0 },
	{ ST, RE, F_SC, 0 },		 { RE, ST, F_SC, 0 },
	{ RU, RP, F_SC | F_P2P, 0 },	 { RP, RU, F_SC | F_P2P, 0 },
	{ RP, ST, F_SC | F_P2P, 0 },	 { ST, RP, F_SC | F_P2P, 0 },
	{ RU, PC, F_SC | F_PRE, 0 },	 { PC, RU, F_SC | F_PRE, 0 },
	{ PC, SC, F_SC | F_PRE, F_P2P },
	{ PC, PP, F_SC | F_PRE | F_P2P, 0 },
	{ PP, PC, F_SC | F_PRE | F_P2P, 0 },
	{ PP, SC, F_SC | F_PRE | F_P2P, 0 },
	{ RP, PP, F_SC | F_PRE | F_P2P, 0 },
	{ PP, RP, F_SC | F_PRE | F_P2P, 0 },
};

static bool arc_ok(int from, int to, uint64_t f)
{
	for (size_t i = 0; i < sizeof(arcs) / sizeof(arcs[0]); i++)
		if (arcs[i].from == from && arcs[i].to == to &&
		    (arcs[i].needs & f) == arcs[i].needs &&
		    !(arcs[i].without & f))
			return true;
	return false;
}

static bool saving(int s)
{
	return s == SC || s == PC || s == PP;
}

static bool state_ok(int s, uint64_t f)
{
	switch (s) {
	case ST: case RU: case SC: case RE: return f & F_SC;
	case RP: return (f & F_P2P) && (f & F_SC);
	case PC: return (f & F_PRE) && (f & F_SC);
	case PP: return (f & F_PRE) && (f & F_P2P) && (f & F_SC);
	default: return false;
	}
}

/* Shortest path length from a to b, -1 if none. Interior states may be in
 * the saving group only when both ends are. STOP_COPY -> PRE_COPY(_P2P) is
 * forbidden outright. */
static int bfs(int a, int b, uint64_t f)
{
	int dist[NS], queue[NS], head = 0, tail = 0;
	bool both_saving = saving(a) && saving(b);

	if (a == SC && (b == PC || b == PP))
		return -1;
	for (int i = 0; i < NS; i++)
		dist[i] = -1;
	dist[a] = 0;
	queue[tail++] = a;
	while (head < tail) {
		int u = queue[head++];
		if (u == b)
			return dist[u];
		if (u != a && saving(u) && !both_saving)
			continue; /* cannot pass through */
		for (int v = 0; v < NS; v++)
			if (dist[v] < 0 && state_ok(v, f) && arc_ok(u, v, f)) {
				dist[v] = dist[u] + 1;
				queue[tail++] = v;
			}
	}
	return -1;
}

static const uint64_t feature_sets[] = {
	F_SC, F_SC | F_PRE, F_SC | F_P2P, F_SC | F_PRE | F_P2P,
};

static void test_table_matches_bfs(void **state)
{
	(void)state;
	for (size_t k = 0; k < 4; k++) {
		uint64_t f = feature_sets[k];
		for (uint32_t a = 0; a < NS; a++)
			for (uint32_t b = 0; b < NS; b++) {
				int want = (state_ok(a, f) && state_ok(b, f))
						   ? bfs(a, b, f)
						   : -1;
				uint32_t cur = a, next;
				int steps = 0, r = 0;
				while (cur != b) {
					r = vfw_mig_next_state(cur, b, f,
							       &next);
					if (r < 0)
						break;
					if (!arc_ok(cur, next, f))
						fail_msg("features %llx %s->%s:"
							 " hop %s->%s is not an"
							 " arc",
							 (unsigned long long)f,
							 vfw_mig_state_name(a),
							 vfw_mig_state_name(b),
							 vfw_mig_state_name(cur),
							 vfw_mig_state_name(next));
					cur = next;
					if (++steps > NS)
						fail_msg("walk does not end");
				}
				if (want < 0) {
					/* Either the first lookup refuses it,
					 * or a == b for an unsupported state. */
					if (a == b && state_ok(a, f))
						continue;
					assert_true(r < 0 || !state_ok(a, f));
					assert_int_equal(
						vfw_mig_next_state(a, b, f,
								   &next),
						-EINVAL);
				} else {
					assert_int_equal(r, 0);
					if (steps != want)
						fail_msg("features %llx %s->%s:"
							 " %d arcs, shortest "
							 "is %d",
							 (unsigned long long)f,
							 vfw_mig_state_name(a),
							 vfw_mig_state_name(b),
							 steps, want);
				}
			}
	}
}

static void test_known_paths(void **state)
{
	(void)state;
	uint64_t f = F_SC | F_PRE; /* the vfio-user subset */
	uint32_t n;

	assert_int_equal(vfw_mig_next_state(RU, SC, f, &n), 0);
	assert_int_equal(n, ST);
	assert_int_equal(vfw_mig_next_state(PC, SC, f, &n), 0);
	assert_int_equal(n, SC);
	assert_int_equal(vfw_mig_next_state(PC, ST, f, &n), 0);
	assert_int_equal(n, RU);
	assert_int_equal(vfw_mig_next_state(RE, RU, f, &n), 0);
	assert_int_equal(n, ST);
	assert_int_equal(vfw_mig_next_state(ST, PC, f, &n), 0);
	assert_int_equal(n, RU);
	assert_int_equal(vfw_mig_next_state(RU, RU, f, &n), 0);
	assert_int_equal(n, RU);
	assert_int_equal(vfw_mig_next_state(SC, PC, f, &n), -EINVAL);
	assert_int_equal(vfw_mig_next_state(RU, ER, f, &n), -EINVAL);
	assert_int_equal(vfw_mig_next_state(ER, RU, f, &n), -EINVAL);
	assert_int_equal(vfw_mig_next_state(RU, RP, f, &n), -EINVAL);
	assert_int_equal(vfw_mig_next_state(RU, 8, f, &n), -EINVAL);
	assert_int_equal(vfw_mig_next_state(RU, PC, F_SC, &n), -EINVAL);
	assert_true(vfw_mig_state_saving(SC));
	assert_false(vfw_mig_state_saving(RE));
	assert_string_equal(vfw_mig_state_name(PP), "PRE_COPY_P2P");
	assert_string_equal(vfw_mig_state_name(99), "INVALID");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_matches_bfs),
		cmocka_unit_test(test_known_paths),
	};
	return cmocka_run_group_tests_name("migfsm", tests, NULL, NULL);
}
