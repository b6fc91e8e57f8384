/* SPDX-License-Identifier: MIT */
/* Convergence control: the token bucket, the prediction, the policy. See
 * converge.h. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/converge.h"

/* The bucket holds at most this long's worth of the rate... */
#define BURST_MS 50u
/* ...and at least this much. */
#define BURST_MIN (64u << 10)
/* A waiter looks again at least this often (a new rate takes effect). */
#define WAIT_SLICE_NS 20000000l

struct vfmig_pace {
	pthread_mutex_t lock;
	uint64_t rate;  /* bytes/s; 0: unlimited */
	double tokens;  /* bytes; negative: debt */
	double last_ns; /* when tokens was last filled */
};

static const char *const mode_names[] = {
	[VFMIG_CONV_OFF] = "off",
	[VFMIG_CONV_THROTTLE] = "throttle",
	[VFMIG_CONV_FORCE] = "force",
};

const char *vfmig_conv_mode_name(enum vfmig_conv_mode m)
{
	if ((unsigned)m >= sizeof(mode_names) / sizeof(mode_names[0]))
		return NULL;
	return mode_names[m];
}

int vfmig_conv_mode_parse(const char *s, enum vfmig_conv_mode *out)
{
	for (unsigned m = 0; m < sizeof(mode_names) / sizeof(mode_names[0]);
	     m++)
		if (s && !strcmp(s, mode_names[m])) {
			*out = (enum vfmig_conv_mode)m;
			return 0;
		}
	return -EINVAL;
}

void vfmig_mig_live_init(struct vfmig_mig_live *l,
			 const struct vfmig_mig_converge *c,
			 uint64_t downtime_ms)
{
	atomic_store(&l->max_bandwidth, c->max_bandwidth);
	atomic_store(&l->downtime_ms, downtime_ms);
	atomic_store(&l->throttle_initial, c->throttle_initial
						   ? c->throttle_initial
						   : VFMIG_CONV_THROTTLE_INITIAL);
	atomic_store(&l->throttle_increment,
		     c->throttle_increment ? c->throttle_increment
					   : VFMIG_CONV_THROTTLE_INCREMENT);
	atomic_store(&l->throttle_max, c->throttle_max
					       ? c->throttle_max
					       : VFMIG_CONV_THROTTLE_MAX);
	atomic_store(&l->throttle_pct, 0);
}

/* ---- token bucket ---- */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int vfmig_pace_create(struct vfmig_pace **out)
{
	struct vfmig_pace *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->last_ns = now_ns();
	*out = p;
	return 0;
}

void vfmig_pace_destroy(struct vfmig_pace *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static double burst(uint64_t rate)
{
	double b = (double)rate * BURST_MS / 1000.0;
	return b < BURST_MIN ? BURST_MIN : b;
}

/* Fill the bucket for the time since it was last filled (lock held). */
static void refill(struct vfmig_pace *p)
{
	double t = now_ns();

	p->tokens += (double)p->rate * (t - p->last_ns) / 1e9;
	if (p->tokens > burst(p->rate))
		p->tokens = burst(p->rate);
	p->last_ns = t;
}

void vfmig_pace_set_rate(struct vfmig_pace *p, uint64_t bytes_per_s)
{
	pthread_mutex_lock(&p->lock);
	refill(p);
	if (bytes_per_s != p->rate) {
		/* A new rate starts afresh: no debt or savings of the old. */
		p->rate = bytes_per_s;
		p->tokens = 0;
	}
	pthread_mutex_unlock(&p->lock);
}

uint64_t vfmig_pace_rate(struct vfmig_pace *p)
{
	uint64_t r;

	pthread_mutex_lock(&p->lock);
	r = p->rate;
	pthread_mutex_unlock(&p->lock);
	return r;
}

void vfmig_pace_take(struct vfmig_pace *p, size_t n)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (!p->rate) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	refill(p);
	p->tokens -= (double)n;
	while (p->rate && p->tokens < 0) {
		double ns = -p->tokens * 1e9 / (double)p->rate;
		long wait = ns > WAIT_SLICE_NS ? WAIT_SLICE_NS : (long)ns + 1;
		struct timespec ts = { 0, wait };

		pthread_mutex_unlock(&p->lock);
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&p->lock);
		refill(p);
	}
	pthread_mutex_unlock(&p->lock);
}

/* ---- prediction and policy ---- */

double vfmig_conv_predict_ms(uint64_t left, double bytes_per_ms,
			     uint64_t limit_bytes_per_s)
{
	double bw = bytes_per_ms;

	if (!left)
		return 0;
	if (limit_bytes_per_s && (bw <= 0 || bw > limit_bytes_per_s / 1e3))
		bw = (double)limit_bytes_per_s / 1e3;
	return bw > 0 ? (double)left / bw : 1e9;
}

enum vfmig_conv_action vfmig_conv_step(struct vfmig_conv_state *s,
				       enum vfmig_conv_mode mode,
				       unsigned trigger_rounds,
				       const struct vfmig_mig_live *l,
				       bool fits)
{
	unsigned need = trigger_rounds ? trigger_rounds
				       : VFMIG_CONV_TRIGGER_ROUNDS;

	if (fits) {
		s->over = 0;
		return VFMIG_CONV_NONE;
	}
	if (mode == VFMIG_CONV_OFF || ++s->over < need)
		return VFMIG_CONV_NONE;
	s->over = 0;
	if (mode == VFMIG_CONV_FORCE)
		return VFMIG_CONV_SWITCH;
	unsigned max = atomic_load(&l->throttle_max);
	unsigned next = s->pct ? s->pct + atomic_load(&l->throttle_increment)
			       : atomic_load(&l->throttle_initial);
	if (max > 99)
		max = 99;
	if (next > max)
		next = max;
	if (next == s->pct)
		return VFMIG_CONV_NONE; /* at the most already */
	s->pct = next;
	if (next > s->max_pct)
		s->max_pct = next;
	return VFMIG_CONV_SET_THROTTLE;
}
