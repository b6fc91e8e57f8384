/* SPDX-License-Identifier: MIT */
/*
 * Sample device "dma", written against the public device API only: a DMA
 * engine driven by a descriptor ring in guest memory (dma_hw.h, README.md).
 *
 * The driver writes descriptors and the ring's tail (the doorbell); the
 * engine's own thread fetches them into an internal queue, works on the
 * queue's front request 64 KiB at a time, writes a completion record to
 * the request's completion queue and asks the library thread (an eventfd)
 * to raise that queue's MSI-X vector. Requests are in flight while the VMM
 * stops the device: the STOP arc waits until the thread is between two
 * chunks (every chunk runs under the device lock, which the arc takes), so
 * no DMA happens after STOP returns; the half-done request's progress is
 * part of the migration state and the destination's engine carries on from
 * there, so it is neither lost nor done twice.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <vfmig/device.h>

#include "dma.h"
#include "dma_hw.h"
#include "dma_state.h"
#include "sample_cli.h"

#define CHUNK (64u << 10)     /* bytes per step of a request */
#define DMA_RATE_DEFAULT (500ull * 1000000) /* bytes/s: --rate 500 */

struct dma {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dma_state st;
	bool running; /* the engine may do DMA (device RUNNING/PRE_COPY) */
	bool quit;
	/* The doorbell was rung through its ioeventfd (no value): read the
	 * tail from the shadow before the next fetch. Not migrated: a
	 * device that starts running re-reads the shadow anyway. */
	bool kick;
	int wake_fd;  /* the engine asks the library thread to raise IRQs */
	vfmig_dev *dev;
	pthread_t thread;
	int verbosity;
	uint64_t rate;      /* bytes per second the engine moves at most */
	int64_t next_ns;    /* pacing: when the engine may move more */
	/* migration session */
	uint8_t *mig;
	size_t mig_len, mig_pos, mig_cap;
	bool mig_bad;
};

static void dma_logf(const struct dma *d, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void dma_logf(const struct dma *d, int level, const char *fmt, ...)
{
	va_list ap;

	if (level > d->verbosity)
		return;
	fprintf(stderr, "dma: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void lib_log(void *priv, int level, const char *msg)
{
	dma_logf(priv, level, "%s", msg);
}

static uint64_t le_get(const uint8_t *b, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = n; i-- > 0;)
		v = v << 8 | b[i];
	return v;
}

static void le_put(uint8_t *b, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the engine (its own thread; every step under d->lock) ---- */

/* Set the ring error: the engine stops until a reset. */
static void ring_error(struct dma *d, int err, const char *what)
{
	d->st.status |= DMA_STATUS_ERROR;
	d->st.error = (uint32_t)-err;
	dma_logf(d, VFMIG_LOG_WARNING, "ring error: %s: %s", what,
		 vfmig_dev_strerror(err));
}

/* Fetch the descriptor at the ring's head into the queue. A descriptor the
 * device cannot read stops the ring; one it can read but refuses is
 * completed with EINVAL. -EPERM: the library stopped DMA; try later. */
static int fetch(struct dma *d)
{
	struct dma_state *s = &d->st;
	uint8_t desc[DMA_DESC_SIZE], sgl[DMA_MAX_SEGS * DMA_SEG_SIZE];
	uint64_t at = s->sq_base + (uint64_t)(s->sq_head % s->sq_size) *
					   DMA_DESC_SIZE;
	struct dma_req *r = &s->q[s->qn];
	int e = vfmig_dev_dma_read(d->dev, at, desc, sizeof(desc));

	if (e == -EPERM)
		return e;
	if (e < 0) {
		ring_error(d, e, "descriptor read");
		return e;
	}
	uint16_t nseg = (uint16_t)le_get(desc + DMA_DESC_NSEG, 2);
	e = -EINVAL; /* no scatter list to read */
	if (nseg && nseg <= DMA_MAX_SEGS) {
		e = vfmig_dev_dma_read(d->dev, le_get(desc + DMA_DESC_SGL, 8),
				       sgl, nseg * DMA_SEG_SIZE);
		if (e == -EPERM)
			return e;
	}
	dma_req_decode(r, desc, e == 0 ? sgl : NULL, e);
	s->qn++;
	s->sq_head++;
	return 0;
}

/* The segment and offset of stream position pos. */
static void seg_at(const struct dma_req *r, uint64_t pos, unsigned int *i,
		   uint64_t *off)
{
	*i = 0;
	while (*i < r->nseg && pos >= r->seg[*i].len) {
		pos -= r->seg[*i].len;
		(*i)++;
	}
	*off = pos;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* The engine moves at most d->rate bytes/s, as hardware would: n bytes
 * moved put the next step off until they are paid for (engine_main waits
 * with the lock released, and fetches meanwhile). So requests take long
 * enough to be in flight when the VMM stops the device. */
static void pace(struct dma *d, uint64_t n)
{
	int64_t now = mono_ns();

	if (d->next_ns < now)
		d->next_ns = now;
	d->next_ns += (int64_t)(n * 1000000000ull / d->rate);
}

/* One step of request r: at most CHUNK bytes, inside one segment. */
static int step(struct dma *d, struct dma_req *r, uint8_t *buf)
{
	unsigned int i;
	uint64_t off, n;
	int e = 0;

	seg_at(r, r->done, &i, &off);
	n = r->seg[i].len - off;
	if (n > CHUNK)
		n = CHUNK;
	uint64_t at = r->seg[i].addr + off;
	if (r->op == DMA_OP_COPY) {
		e = vfmig_dev_dma_read(d->dev, r->src + r->done, buf, n);
		if (e == 0)
			e = vfmig_dev_dma_write(d->dev, at, buf, n);
	} else if (r->op == DMA_OP_FILL) {
		for (uint64_t w = 0; w < n / 8; w++)
			le_put(buf + w * 8,
			       dma_fill_word(r->src, r->done / 8 + w), 8);
		e = vfmig_dev_dma_write(d->dev, at, buf, n);
	} else {
		e = vfmig_dev_dma_read(d->dev, at, buf, n);
		for (uint64_t w = 0; e == 0 && w < n / 8; w++)
			r->acc = dma_csum_word(r->acc, le_get(buf + w * 8, 8));
	}
	if (e == -EPERM)
		return e; /* stopped under us: the step is not done */
	if (e < 0)
		r->err = (uint32_t)-e;
	else
		r->done += n;
	pace(d, n);
	return 0;
}

/*
 * Write r's completion record, then count it; drop r from the queue.
 * INDEX is what a driver polls, so it goes last, in a write of its own:
 * one write of the whole record may land in any order, and a driver that
 * saw the new INDEX read the RESULT of the entry's previous use (a KVM
 * guest polling while the device, under memcheck, was still copying).
 * First the record with INDEX 0, which no completion has, then INDEX.
 * Stopped between the two, the completion is not counted and is written
 * again whole when the device runs.
 */
static int complete(struct dma *d)
{
	struct dma_state *s = &d->st;
	struct dma_req *r = &s->q[0];
	struct dma_cq *q = &s->cq[r->cq];
	uint8_t c[DMA_CPL_SIZE];
	uint64_t n = (uint64_t)q->count + 1;
	uint64_t at = q->base + ((n - 1) % q->size) * DMA_CPL_SIZE;
	int e;

	le_put(c + DMA_CPL_SEQ, r->seq, 8);
	le_put(c + DMA_CPL_INDEX, 0, 8);
	le_put(c + DMA_CPL_STATUS, r->err, 4);
	le_put(c + DMA_CPL_OP, r->op, 4);
	le_put(c + DMA_CPL_RESULT, r->op == DMA_OP_CSUM ? r->acc : r->done, 8);
	e = vfmig_dev_dma_write(d->dev, at, c, sizeof(c));
	if (e == 0) {
		__atomic_thread_fence(__ATOMIC_RELEASE);
		le_put(c + DMA_CPL_INDEX, n, 8);
		e = vfmig_dev_dma_write(d->dev, at + DMA_CPL_INDEX,
					c + DMA_CPL_INDEX, 8);
	}
	if (e == -EPERM)
		return e;
	if (e < 0) {
		ring_error(d, e, "completion write");
		return e;
	}
	q->count++;
	s->done++;
	q->irq_pending = true;
	memmove(&s->q[0], &s->q[1], (s->qn - 1) * sizeof(s->q[0]));
	s->qn--;
	uint64_t one = 1;
	if (write(d->wake_fd, &one, sizeof(one)) < 0)
		dma_logf(d, VFMIG_LOG_ERR, "wake: %s", strerror(errno));
	return 0;
}

static bool has_work(const struct dma *d)
{
	const struct dma_state *s = &d->st;

	if (!d->running || !(s->ctrl & DMA_CTRL_ENABLE) ||
	    (s->status & DMA_STATUS_ERROR))
		return false;
	return d->kick || s->qn > 0 || s->sq_head != s->sq_tail;
}

/* A new tail v from the driver (the doorbell's value or the shadow's):
 * more than a ring ahead of what was fetched is the ring error. */
static void set_tail(struct dma *d, uint32_t v)
{
	struct dma_state *s = &d->st;

	if (v - s->sq_head > s->sq_size)
		ring_error(d, -EINVAL, "tail more than a ring ahead");
	else
		s->sq_tail = v;
}

/* After a kick: the tail the driver published in its shadow. One behind
 * SQ_TAIL is stale (a driver that rang with a value since) and changes
 * nothing. -EPERM: DMA refused now; the kick stays. */
static int read_shadow(struct dma *d)
{
	struct dma_state *s = &d->st;
	uint8_t b[4];
	int e;

	if (!s->sq_shadow) {
		d->kick = false;
		ring_error(d, -EINVAL, "doorbell kick without a tail shadow");
		return -EINVAL;
	}
	e = vfmig_dev_dma_read(d->dev, s->sq_shadow, b, sizeof(b));
	if (e == -EPERM)
		return e;
	d->kick = false;
	if (e < 0) {
		ring_error(d, e, "tail shadow read");
		return e;
	}
	uint32_t v = (uint32_t)le_get(b, 4);
	if (v - s->sq_head >= s->sq_tail - s->sq_head)
		set_tail(d, v);
	return 0;
}

/* Wait on the condition until ns (CLOCK_MONOTONIC) at the latest. */
static void wait_until(struct dma *d, int64_t ns)
{
	int64_t left = ns - mono_ns();
	struct timespec ts;

	if (left <= 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += left / 1000000000ll;
	ts.tv_nsec += left % 1000000000ll;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&d->cond, &d->lock, &ts);
}

/* One unit of work: fetch (at once), or step or complete (paced).
 * -EPERM: DMA refused now. 1: not yet, waited for the pace. */
static int work(struct dma *d, uint8_t *buf)
{
	struct dma_state *s = &d->st;

	if (d->kick)
		return read_shadow(d);
	if (s->qn < DMA_QMAX && s->sq_head != s->sq_tail)
		return fetch(d);
	if (s->qn == 0)
		return 0;
	if (mono_ns() < d->next_ns) {
		wait_until(d, d->next_ns);
		return 1;
	}
	if (s->q[0].err == 0 && s->q[0].done < s->q[0].len)
		return step(d, &s->q[0], buf);
	return complete(d);
}

static void *engine_main(void *arg)
{
	struct dma *d = arg;
	uint8_t *buf = malloc(CHUNK);

	pthread_mutex_lock(&d->lock);
	while (!d->quit && buf) {
		if (!has_work(d)) {
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		/* -EPERM: the library left (or has not yet entered) a
		 * running state: wait for the arc that gets us going. */
		if (work(d, buf) == -EPERM)
			wait_until(d, mono_ns() + 1000000);
	}
	pthread_mutex_unlock(&d->lock);
	free(buf);
	return NULL;
}

/* On the library thread: raise the vector of every queue with news. */
static void on_wake(vfmig_dev *dev, void *priv)
{
	struct dma *d = priv;
	uint32_t st = vfmig_dev_mig_state(dev);

	if (st != VFMIG_DEV_MIG_RUNNING && st != VFMIG_DEV_MIG_PRE_COPY)
		return; /* kept pending: migrated, raised after resuming */
	pthread_mutex_lock(&d->lock);
	for (unsigned int q = 0; q < DMA_NCQ; q++)
		if (d->st.cq[q].irq_pending) {
			d->st.cq[q].irq_pending = false;
			(void)vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSIX, q);
		}
	pthread_mutex_unlock(&d->lock);
}

/* ---- registers (library thread) ---- */

static uint32_t reg_read(const struct dma_state *s, uint64_t off)
{
	if (off >= DMA_REG_CQ0 && off < DMA_REG_CQ0 + DMA_NCQ * 0x10) {
		const struct dma_cq *q = &s->cq[(off - DMA_REG_CQ0) / 0x10];
		switch ((off - DMA_REG_CQ0) % 0x10) {
		case DMA_CQ_BASE_LO: return (uint32_t)q->base;
		case DMA_CQ_BASE_HI: return (uint32_t)(q->base >> 32);
		case DMA_CQ_SIZE: return q->size;
		default: return q->count;
		}
	}
	switch (off) {
	case DMA_REG_ID: return DMA_MAGIC;
	case DMA_REG_VERSION: return 1;
	case DMA_REG_SQ_BASE_LO: return (uint32_t)s->sq_base;
	case DMA_REG_SQ_BASE_HI: return (uint32_t)(s->sq_base >> 32);
	case DMA_REG_SQ_SIZE: return s->sq_size;
	case DMA_REG_SQ_TAIL: return s->sq_tail;
	case DMA_REG_SQ_HEAD: return s->sq_head;
	case DMA_REG_CTRL: return s->ctrl;
	case DMA_REG_STATUS: return s->status;
	case DMA_REG_ERROR: return s->error;
	case DMA_REG_DONE: return s->done;
	case DMA_REG_SQ_SHADOW_LO: return (uint32_t)s->sq_shadow;
	case DMA_REG_SQ_SHADOW_HI: return (uint32_t)(s->sq_shadow >> 32);
	default: return 0;
	}
}

static void set_lo(uint64_t *v, uint32_t x)
{
	*v = (*v & ~0xffffffffull) | x;
}

static void set_hi(uint64_t *v, uint32_t x)
{
	*v = (*v & 0xffffffffull) | (uint64_t)x << 32;
}

/* Enable: the ring setup must be sane, else the ring error is set. */
static void ctrl_write(struct dma *d, uint32_t v)
{
	struct dma_state *s = &d->st;
	bool ok = dma_ring_size_ok(s->sq_size) && !(s->sq_base % DMA_DESC_SIZE) &&
		  !(s->sq_shadow % 4);

	for (unsigned int q = 0; q < DMA_NCQ; q++)
		ok = ok && dma_ring_size_ok(s->cq[q].size) &&
		     !(s->cq[q].base % DMA_CPL_SIZE);
	s->ctrl = v & DMA_CTRL_ENABLE;
	s->status &= ~DMA_STATUS_ENABLED;
	if (!s->ctrl)
		return;
	if (!ok) {
		ring_error(d, -EINVAL, "enable with a bad ring setup");
		s->ctrl = 0;
		return;
	}
	s->status |= DMA_STATUS_ENABLED;
}

static void reg_write(struct dma *d, uint64_t off, uint32_t v)
{
	struct dma_state *s = &d->st;
	bool enabled = s->ctrl & DMA_CTRL_ENABLE;

	if (off >= DMA_REG_CQ0 && off < DMA_REG_CQ0 + DMA_NCQ * 0x10) {
		struct dma_cq *q = &s->cq[(off - DMA_REG_CQ0) / 0x10];
		if (enabled)
			return; /* latched while enabled */
		switch ((off - DMA_REG_CQ0) % 0x10) {
		case DMA_CQ_BASE_LO: set_lo(&q->base, v); break;
		case DMA_CQ_BASE_HI: set_hi(&q->base, v); break;
		case DMA_CQ_SIZE: q->size = v; break;
		default: break;
		}
		return;
	}
	switch (off) {
	case DMA_REG_SQ_BASE_LO: if (!enabled) set_lo(&s->sq_base, v); break;
	case DMA_REG_SQ_BASE_HI: if (!enabled) set_hi(&s->sq_base, v); break;
	case DMA_REG_SQ_SIZE: if (!enabled) s->sq_size = v; break;
	case DMA_REG_CTRL: ctrl_write(d, v); break;
	case DMA_REG_SQ_SHADOW_LO: if (!enabled) set_lo(&s->sq_shadow, v); break;
	case DMA_REG_SQ_SHADOW_HI: if (!enabled) set_hi(&s->sq_shadow, v); break;
	case DMA_REG_SQ_TAIL: set_tail(d, v); break;
	default: break;
	}
}

static int dma_access(vfmig_dev *dev, void *priv, unsigned int bar,
		      uint64_t off, void *buf, size_t len, bool is_write)
{
	struct dma *d = priv;
	uint32_t st = vfmig_dev_mig_state(dev);

	if (bar != DMA_BAR_REGS || len != 4 || (off & 3))
		return -EINVAL;
	if (is_write && st != VFMIG_DEV_MIG_RUNNING &&
	    st != VFMIG_DEV_MIG_PRE_COPY)
		return -EBUSY; /* stopped for migration: state is frozen */
	pthread_mutex_lock(&d->lock);
	if (is_write && vfmig_dev_write_is_kick(dev)) {
		/* The doorbell's ioeventfd: no value, the engine reads the
		 * tail from the shadow (on its thread: a DMA read). */
		if (off == DMA_REG_SQ_TAIL && (d->st.ctrl & DMA_CTRL_ENABLE))
			d->kick = true;
		pthread_cond_broadcast(&d->cond);
	} else if (is_write) {
		reg_write(d, off, (uint32_t)le_get(buf, 4));
		pthread_cond_broadcast(&d->cond);
	} else {
		le_put(buf, reg_read(&d->st, off), 4);
	}
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void mig_reset(struct dma *d)
{
	free(d->mig);
	d->mig = NULL;
	d->mig_len = d->mig_pos = d->mig_cap = 0;
	d->mig_bad = false;
}

static int dma_reset(vfmig_dev *dev, void *priv)
{
	struct dma *d = priv;

	(void)dev;
	pthread_mutex_lock(&d->lock);
	memset(&d->st, 0, sizeof(d->st));
	d->running = true;
	d->kick = false;
	mig_reset(d);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* ---- migration ----
 *
 * STOP_COPY only: the state is small. dma_state.h has its stream. */

static int mig_build(struct dma *d)
{
	const struct dma_state *s = &d->st;
	uint8_t *b = malloc(DMA_MIG_MAX);

	if (!b)
		return -ENOMEM;
	mig_reset(d);
	d->mig = b;
	d->mig_len = dma_state_encode(s, b);
	dma_logf(d, VFMIG_LOG_INFO,
		 "saved: head %u tail %u, %u request(s) in flight%s", s->sq_head,
		 s->sq_tail, s->qn,
		 s->qn && s->q[0].done ? " (the first half done)" : "");
	return 0;
}

static int dma_transition(vfmig_dev *dev, void *priv, uint32_t from,
			  uint32_t to)
{
	struct dma *d = priv;
	int r = 0;

	(void)dev;
	dma_logf(d, VFMIG_LOG_DEBUG, "migration arc %u -> %u", from, to);
	/* Taking the lock waits for the engine's current step: after this
	 * arc to a stopped state no DMA happens. */
	pthread_mutex_lock(&d->lock);
	d->running = to == VFMIG_DEV_MIG_RUNNING ||
		     to == VFMIG_DEV_MIG_PRE_COPY;
	if (to == VFMIG_DEV_MIG_STOP_COPY)
		r = mig_build(d);
	else if (to == VFMIG_DEV_MIG_RESUMING ||
		 from == VFMIG_DEV_MIG_STOP_COPY ||
		 from == VFMIG_DEV_MIG_RESUMING)
		mig_reset(d);
	if (to == VFMIG_DEV_MIG_RESUMING) {
		memset(&d->st, 0, sizeof(d->st));
		d->kick = false;
	}
	if (r < 0)
		d->running = from == VFMIG_DEV_MIG_RUNNING ||
			     from == VFMIG_DEV_MIG_PRE_COPY;
	/* Running again (a destination after its load, a source whose
	 * migration failed): a kick may have gone to the source's eventfd
	 * after its state was saved, or wait in a counter. Read the shadow
	 * once, as if kicked: nothing is lost, a stale one changes nothing. */
	if (d->running && d->st.sq_shadow && (d->st.ctrl & DMA_CTRL_ENABLE))
		d->kick = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (d->running) {
		/* Interrupts that were pending when the state was saved. */
		uint64_t one = 1;
		if (write(d->wake_fd, &one, sizeof(one)) < 0)
			return -errno;
	}
	return r;
}

static ssize_t dma_save(vfmig_dev *dev, void *priv, void *buf, size_t len)
{
	struct dma *d = priv;
	size_t n = d->mig_len - d->mig_pos;

	(void)dev;
	if (n > len)
		n = len;
	memcpy(buf, d->mig + d->mig_pos, n);
	d->mig_pos += n;
	return (ssize_t)n;
}

static int dma_estimate(vfmig_dev *dev, void *priv,
			struct vfmig_dev_mig_estimate *est)
{
	(void)dev;
	(void)priv;
	est->stop_copy_bytes = DMA_MIG_MAX; /* at most */
	return 0;
}

static ssize_t dma_load(vfmig_dev *dev, void *priv, const void *buf,
			size_t len)
{
	struct dma *d = priv;

	(void)dev;
	if (d->mig_bad)
		return -EINVAL;
	if (len > DMA_MIG_MAX - d->mig_len) {
		dma_logf(d, VFMIG_LOG_ERR, "migration data refused: more than "
			 "the %u bytes a version %u stream has at most",
			 DMA_MIG_MAX, DMA_MIG_VERSION);
		d->mig_bad = true;
		return -EINVAL;
	}
	if (!d->mig) {
		d->mig = malloc(DMA_MIG_MAX);
		if (!d->mig)
			return -ENOMEM;
	}
	memcpy(d->mig + d->mig_len, buf, len);
	d->mig_len += len;
	return (ssize_t)len;
}

static const char *mig_check(struct dma *d, struct dma_state *n)
{
	if (d->mig_bad)
		return "an earlier chunk was refused";
	return dma_state_decode(d->mig, d->mig_len, n);
}

static int dma_load_finish(vfmig_dev *dev, void *priv)
{
	struct dma *d = priv;
	struct dma_state n;
	const char *why;

	(void)dev;
	memset(&n, 0, sizeof(n));
	why = mig_check(d, &n);
	if (why) {
		dma_logf(d, VFMIG_LOG_ERR, "migration data refused: %s", why);
		return -EINVAL;
	}
	pthread_mutex_lock(&d->lock);
	d->st = n;
	mig_reset(d);
	pthread_mutex_unlock(&d->lock);
	dma_logf(d, VFMIG_LOG_INFO,
		 "loaded: head %u tail %u, %u request(s) to carry on with",
		 n.sq_head, n.sq_tail, n.qn);
	return 0;
}

static const struct vfmig_dev_desc dma_desc = {
	.version = VFMIG_DEV_DESC_VERSION,
	.vendor_id = DMA_VENDOR_ID,
	.device_id = DMA_DEVICE_ID,
	.subsys_vendor_id = 0x1b36,
	.subsys_id = 0x0003,
	.revision = 1,
	.class_code = 0x088000, /* system peripheral, other */
	.bars = {
		[DMA_BAR_REGS] = { .size = 4096, .flags = VFMIG_DEV_BAR_MEM32 },
		[DMA_BAR_MSIX] = { .size = 4096, .flags = VFMIG_DEV_BAR_MEM32 },
	},
	.msix_vectors = DMA_NCQ,
	.msix_bar = DMA_BAR_MSIX,
	.msix_table_offset = 0x000,
	.msix_pba_offset = 0x800,
	.pcie = true,
};

static const struct vfmig_dev_ops dma_ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = dma_access,
	.reset = dma_reset,
	.mig_flags = VFMIG_DEV_MIG_F_STOP_COPY,
	.mig_transition = dma_transition,
	.mig_save = dma_save,
	.mig_estimate = dma_estimate,
	.mig_load = dma_load,
	.mig_load_finish = dma_load_finish,
};

int vfmig_sample_dma_main(int argc, char **argv)
{
	static const char *const flags[] = { "--test-skip-dirty-log" };
	static const char *const extra[] = { "--rate" };
	const char *rate = NULL;
	bool skip_log = false;
	struct dma d = { .running = true, .rate = DMA_RATE_DEFAULT };
	struct sample_cli o = { .name = "dma", .n_extra = 1,
				.extra_names = extra, .extra_vals = &rate,
				.n_flags = 1, .flag_names = flags,
				.flag_vals = &skip_log };
	int rc;

	if (sample_cli_parse(&o, argc, argv) < 0)
		return 2;
	if (rate) {
		char *end;
		unsigned long long mb;
		errno = 0;
		mb = strtoull(rate, &end, 10);
		if (errno || end == rate || *end || mb < 1 || mb > 100000) {
			fprintf(stderr, "dma: --rate %s: not a number of MB/s "
					"from 1 to 100000\n", rate);
			return 2;
		}
		d.rate = mb * 1000000ull;
	}
	d.verbosity = o.verbosity;
	/* Tests only: the library's switch (device.h) that leaves this
	 * device's writes out of the DMA dirty log. */
	if (skip_log && setenv("VFMIG_DEV_TEST_SKIP_DIRTY_LOG", "1", 1) < 0)
		return 1;
	d.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d.wake_fd < 0) {
		fprintf(stderr, "dma: eventfd: %s\n", strerror(errno));
		return 1;
	}
	pthread_mutex_init(&d.lock, NULL);
	pthread_cond_init(&d.cond, NULL);
	rc = vfmig_dev_create(&dma_desc, &dma_ops, &d, &d.dev);
	if (rc < 0) {
		fprintf(stderr, "dma: create: %s\n", vfmig_dev_strerror(rc));
		close(d.wake_fd);
		return 1;
	}
	vfmig_dev_set_log(d.dev, lib_log, &d, o.verbosity);
	/* The doorbell may be rung without a message (its value is then
	 * read from the tail shadow). */
	rc = vfmig_dev_add_ioeventfd(d.dev, DMA_BAR_REGS, DMA_REG_SQ_TAIL, 4, 0,
				     0);
	if (rc < 0) {
		fprintf(stderr, "dma: ioeventfd: %s\n", vfmig_dev_strerror(rc));
		vfmig_dev_destroy(d.dev);
		close(d.wake_fd);
		return 1;
	}
	rc = -pthread_create(&d.thread, NULL, engine_main, &d);
	if (rc < 0) {
		fprintf(stderr, "dma: engine thread: %s\n", strerror(-rc));
		vfmig_dev_destroy(d.dev);
		close(d.wake_fd);
		return 1;
	}
	if (skip_log)
		dma_logf(&d, VFMIG_LOG_WARNING,
			 "--test-skip-dirty-log: DMA writes are NOT logged "
			 "(tests only: migrations will lose data)");
	rc = sample_cli_serve_wake(d.dev, &o, d.wake_fd, on_wake, &d);
	pthread_mutex_lock(&d.lock);
	d.quit = true;
	pthread_cond_broadcast(&d.cond);
	pthread_mutex_unlock(&d.lock);
	pthread_join(d.thread, NULL);
	vfmig_dev_destroy(d.dev);
	mig_reset(&d);
	close(d.wake_fd);
	pthread_cond_destroy(&d.cond);
	pthread_mutex_destroy(&d.lock);
	return rc;
}
