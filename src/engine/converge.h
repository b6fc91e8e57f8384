/* SPDX-License-Identifier: MIT */
/*
 * Convergence control of an outgoing migration: the bandwidth limit (a token
 * bucket that the source's socket channels draw from), the parameters that
 * may change while the migration runs (migrate-set-parameters), the
 * downtime prediction under the limit, and the auto-converge policy that
 * throttles the guest (or switches over anyway) when the prediction stays
 * above the downtime limit.
 *
 * Policy (docs/migration.md, "Convergence"): after trigger_rounds pre-copy
 * rounds in a row whose predicted downtime is above the limit,
 *   throttle: the guest is throttled to throttle_initial percent, and every
 *             further trigger_rounds rounds above the limit by
 *             throttle_increment more, up to throttle_max; a round that fits
 *             restarts the count but keeps the throttle;
 *   force:    the source switches over anyway, and the report says so;
 *   off:      nothing: pre-copy goes on until max-rounds, as always.
 *
 * Nothing here prints; errors are negative errno values.
 */
#ifndef VFMIG_ENGINE_CONVERGE_H
#define VFMIG_ENGINE_CONVERGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFMIG_CONV_TRIGGER_ROUNDS 3u
#define VFMIG_CONV_THROTTLE_INITIAL 20u
#define VFMIG_CONV_THROTTLE_INCREMENT 10u
#define VFMIG_CONV_THROTTLE_MAX 99u
#define VFMIG_CONV_STALL_TIMEOUT_MS 10000
/* A limited pre-copy round sends at most this long's worth of data, so
 * that the loop (cancel, new parameters, the prediction) comes round. */
#define VFMIG_CONV_ROUND_MS 500u

enum vfmig_conv_mode {
	VFMIG_CONV_OFF = 0,      /* keep going up to max-rounds */
	VFMIG_CONV_THROTTLE = 1, /* throttle the guest in steps */
	VFMIG_CONV_FORCE = 2,    /* switch over anyway, with a warning */
};

/* "off", "throttle", "force"; NULL for other values. Parse: 0 or -EINVAL. */
const char *vfmig_conv_mode_name(enum vfmig_conv_mode m);
int vfmig_conv_mode_parse(const char *s, enum vfmig_conv_mode *out);

/*
 * What may change while a migration runs: written by the control thread
 * (migrate-set-parameters), read by the migration once per round. The
 * migration writes throttle_pct, the guest's throttle now.
 */
struct vfmig_mig_live {
	_Atomic uint64_t max_bandwidth; /* bytes/s; 0: unlimited */
	_Atomic uint64_t downtime_ms;   /* the downtime limit */
	_Atomic unsigned throttle_initial, throttle_increment, throttle_max;
	_Atomic unsigned throttle_pct;  /* out */
};

/* The convergence parameters of struct vfmig_mig_params (source only). */
struct vfmig_mig_converge {
	uint64_t max_bandwidth;   /* bytes/s during pre-copy; 0: unlimited */
	enum vfmig_conv_mode mode;
	unsigned trigger_rounds;  /* 0: VFMIG_CONV_TRIGGER_ROUNDS */
	unsigned throttle_initial, throttle_increment, throttle_max; /* 0:
				   * 20, 10, 99 percent */
	int stall_timeout_ms;     /* 0: VFMIG_CONV_STALL_TIMEOUT_MS */
	/* Optional: the values above (and the downtime limit) as they change
	 * while it runs; initialise it with vfmig_mig_live_init first. NULL:
	 * the engine keeps its own copy, which nobody changes. */
	struct vfmig_mig_live *live;
};

/* Store c's values, with their defaults, and downtime_ms into l; the
 * throttle to 0. */
void vfmig_mig_live_init(struct vfmig_mig_live *l,
			 const struct vfmig_mig_converge *c,
			 uint64_t downtime_ms);

/* ---- the bandwidth limit ---- */

struct vfmig_pace;

/* A token bucket at rate 0 (unlimited). 0 or -ENOMEM. */
int vfmig_pace_create(struct vfmig_pace **out);
void vfmig_pace_destroy(struct vfmig_pace *p); /* NULL fine */

/* Bytes per second; 0: unlimited. Takes effect at once, also for a
 * thread waiting in vfmig_pace_take. Thread-safe. */
void vfmig_pace_set_rate(struct vfmig_pace *p, uint64_t bytes_per_s);
uint64_t vfmig_pace_rate(struct vfmig_pace *p);

/*
 * n bytes are about to be sent: take them from the bucket, then sleep
 * (never spin) while the bucket is in debt, so that what all callers take
 * together keeps to the rate. The bucket fills at the rate up to a burst of
 * 50 ms worth (at least 64 KiB) and starts empty. Thread-safe; p NULL or
 * rate 0: returns at once.
 */
void vfmig_pace_take(struct vfmig_pace *p, size_t n);

/* ---- prediction and policy (pure) ---- */

/*
 * The downtime in ms to send left bytes at the rate pre-copy measured
 * (bytes_per_ms, <= 0: none measured) or, when a limit is set
 * (limit_bytes_per_s), at most the limit: the rate a limited pre-copy
 * achieves is what the prediction may count on. 0 for nothing left; 1e9
 * when there is something but no rate.
 */
double vfmig_conv_predict_ms(uint64_t left, double bytes_per_ms,
			     uint64_t limit_bytes_per_s);

struct vfmig_conv_state {
	unsigned over;    /* rounds in a row above the limit, since the last
			   * step */
	unsigned pct;     /* throttle now */
	unsigned max_pct; /* the highest throttle applied */
};

enum vfmig_conv_action {
	VFMIG_CONV_NONE = 0,
	VFMIG_CONV_SET_THROTTLE, /* throttle the guest to s->pct */
	VFMIG_CONV_SWITCH,       /* switch over anyway */
};

/*
 * One round's verdict: fits (the prediction is within the limit). Counts
 * the rounds above it and says what to do; the throttle steps and the
 * trigger come from l (current values) and trigger_rounds (0: default).
 */
enum vfmig_conv_action vfmig_conv_step(struct vfmig_conv_state *s,
				       enum vfmig_conv_mode mode,
				       unsigned trigger_rounds,
				       const struct vfmig_mig_live *l,
				       bool fits);

#endif
