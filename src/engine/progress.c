/* SPDX-License-Identifier: MIT */
/* Progress and timeline bookkeeping of a migration; see progress.h. */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/migrate_run.h"
#include "engine/progress.h"

_Static_assert(VFMIG_MIG_TRACK_DEVS >= 1, "at least one tracked device");

struct vfmig_mig_track {
	pthread_mutex_t lock; /* guards everything below */
	bool started, source, ended, paused, active, synced;
	double t0, t_end, t_active, t_pause, t_sync;
	double expected_ms, bytes_per_s;
	double dirty_rate;
	unsigned syncs;
	uint64_t ram_total;
	uint32_t page_size;
	bool ram_remaining_known;
	uint64_t dirty_pages;
	uint64_t ram_at_pause, ram_at_end;
	double downtime_ms;
	size_t ndev;
	struct vfmig_mig_dev_stats dev[VFMIG_MIG_TRACK_DEVS];
	uint64_t dev_at_pause[VFMIG_MIG_TRACK_DEVS];
	/* The round under way: its entry is filled at its end. */
	bool in_round;
	struct vfmig_mig_round cur;
	uint64_t ram_at_round, dev_at_round[VFMIG_MIG_TRACK_DEVS];
	unsigned rounds; /* rounds ended */
	struct vfmig_mig_round rounds_kept[VFMIG_MIG_TIMELINE_MAX];
	size_t nkept;
	unsigned dropped;
};

int vfmig_mig_track_create(struct vfmig_mig_track **out)
{
	struct vfmig_mig_track *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void vfmig_mig_track_destroy(struct vfmig_mig_track *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void vfmig_mig_track_begin(struct vfmig_mig_track *t, double now_ms,
			   bool source, uint64_t ram_total, uint32_t page_size,
			   size_t ndev, const char *const *ids)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	/* Everything after the lock goes back to zero. */
	memset((char *)t + offsetof(struct vfmig_mig_track, started), 0,
	       sizeof(*t) - offsetof(struct vfmig_mig_track, started));
	t->started = true;
	t->source = source;
	t->t0 = now_ms;
	t->ram_total = ram_total;
	t->page_size = page_size;
	t->expected_ms = -1;
	t->downtime_ms = -1;
	t->ndev = ndev < VFMIG_MIG_TRACK_DEVS ? ndev : VFMIG_MIG_TRACK_DEVS;
	for (size_t i = 0; i < t->ndev; i++) {
		size_t n = ids && ids[i] ? strnlen(ids[i], sizeof(t->dev[i].id) - 1)
					 : 0;
		if (n)
			memcpy(t->dev[i].id, ids[i], n);
		t->dev[i].id[n] = '\0';
	}
	pthread_mutex_unlock(&t->lock);
}

void vfmig_mig_track_active(struct vfmig_mig_track *t, double now_ms)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	if (!t->active) {
		t->active = true;
		t->t_active = now_ms;
	}
	pthread_mutex_unlock(&t->lock);
}

void vfmig_mig_track_sync(struct vfmig_mig_track *t, double now_ms,
			  uint64_t dirty_pages)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	if (t->synced && now_ms > t->t_sync) {
		t->dirty_rate = (double)dirty_pages * 1e3 / (now_ms - t->t_sync);
		if (t->in_round)
			t->cur.dirty_pages_rate = t->dirty_rate;
	}
	t->synced = true;
	t->t_sync = now_ms;
	t->syncs++;
	pthread_mutex_unlock(&t->lock);
}

void vfmig_mig_track_round_start(struct vfmig_mig_track *t, double now_ms,
				 uint64_t ram_bytes)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	memset(&t->cur, 0, sizeof(t->cur));
	t->cur.round = t->rounds + 1;
	t->cur.start_ms = now_ms - t->t0;
	t->cur.expected_downtime_ms = -1;
	t->ram_at_round = ram_bytes;
	for (size_t i = 0; i < t->ndev; i++)
		t->dev_at_round[i] = t->dev[i].transferred;
	t->in_round = true;
	pthread_mutex_unlock(&t->lock);
}

void vfmig_mig_track_dev(struct vfmig_mig_track *t, size_t i, uint64_t len)
{
	if (!t || i >= VFMIG_MIG_TRACK_DEVS)
		return;
	pthread_mutex_lock(&t->lock);
	if (i < t->ndev)
		t->dev[i].transferred += len;
	pthread_mutex_unlock(&t->lock);
}

void vfmig_mig_track_dev_remaining(struct vfmig_mig_track *t, size_t i,
				   uint64_t bytes)
{
	if (!t || i >= VFMIG_MIG_TRACK_DEVS)
		return;
	pthread_mutex_lock(&t->lock);
	if (i < t->ndev) {
		t->dev[i].remaining = bytes;
		t->dev[i].remaining_known = true;
	}
	pthread_mutex_unlock(&t->lock);
}

void vfmig_mig_track_round_end(struct vfmig_mig_track *t, double now_ms,
			       uint64_t ram_bytes, uint64_t dirty_pages,
			       double expected_ms, double bytes_per_s)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	if (!t->in_round) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	t->in_round = false;
	t->rounds++;
	t->dirty_pages = dirty_pages;
	t->ram_remaining_known = true;
	t->expected_ms = expected_ms >= 0 ? expected_ms : -1;
	t->bytes_per_s = bytes_per_s > 0 ? bytes_per_s : 0;
	t->cur.end_ms = now_ms - t->t0;
	t->cur.ram_bytes = ram_bytes - t->ram_at_round;
	for (size_t i = 0; i < t->ndev; i++)
		t->cur.dev_bytes[i] = t->dev[i].transferred - t->dev_at_round[i];
	t->cur.dirty_pages = dirty_pages;
	t->cur.expected_downtime_ms = t->expected_ms;
	t->cur.mbps = t->bytes_per_s * 8 / 1e6;
	if (t->nkept < VFMIG_MIG_TIMELINE_MAX)
		t->rounds_kept[t->nkept++] = t->cur;
	else
		t->dropped++;
	pthread_mutex_unlock(&t->lock);
}

void vfmig_mig_track_pause(struct vfmig_mig_track *t, double now_ms,
			   uint64_t ram_bytes)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	if (!t->paused) {
		t->paused = true;
		t->t_pause = now_ms;
		t->ram_at_pause = ram_bytes;
		for (size_t i = 0; i < t->ndev; i++)
			t->dev_at_pause[i] = t->dev[i].transferred;
	}
	pthread_mutex_unlock(&t->lock);
}

void vfmig_mig_track_end(struct vfmig_mig_track *t, double now_ms,
			 uint64_t ram_bytes, double downtime_ms)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	if (t->started && !t->ended) {
		t->ended = true;
		t->t_end = now_ms;
		t->ram_at_end = ram_bytes;
		t->downtime_ms = downtime_ms >= 0 ? downtime_ms : -1;
		/* Completed: nothing is left to send. */
		if (downtime_ms >= 0) {
			t->dirty_pages = 0;
			for (size_t i = 0; i < t->ndev; i++)
				t->dev[i].remaining = 0;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

/* The stop-copy entry: from the pause to the end (or now). */
static void stop_copy_entry(const struct vfmig_mig_track *t, double now_ms,
			    uint64_t ram_bytes, struct vfmig_mig_round *e)
{
	memset(e, 0, sizeof(*e));
	e->stop_copy = true;
	e->start_ms = t->t_pause - t->t0;
	e->end_ms = (t->ended ? t->t_end : now_ms) - t->t0;
	e->ram_bytes = (t->ended ? t->ram_at_end : ram_bytes) - t->ram_at_pause;
	for (size_t i = 0; i < t->ndev; i++)
		e->dev_bytes[i] = t->dev[i].transferred - t->dev_at_pause[i];
	e->expected_downtime_ms = -1;
}

void vfmig_mig_track_stats(struct vfmig_mig_track *t, double now_ms,
			   uint64_t ram_bytes, struct vfmig_mig_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->setup_ms = out->expected_downtime_ms = out->switchover_ms =
		out->downtime_ms = -1;
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	if (!t->started) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	double end = t->ended ? t->t_end : now_ms;
	uint64_t ram = t->ended ? t->ram_at_end : ram_bytes;
	uint64_t moved = ram;

	out->started = true;
	out->ended = t->ended;
	out->source = t->source;
	out->total_ms = end - t->t0;
	if (t->active)
		out->setup_ms = t->t_active - t->t0;
	out->expected_downtime_ms = t->expected_ms;
	if (t->paused)
		out->switchover_ms = t->t_pause - t->t0;
	out->downtime_ms = t->downtime_ms;
	out->ram_total = t->ram_total;
	out->page_size = t->page_size;
	out->ram_remaining_known = t->ram_remaining_known;
	out->ram_remaining = t->dirty_pages * t->page_size;
	out->ram_precopy_bytes = t->paused ? t->ram_at_pause : ram;
	out->ram_downtime_bytes = t->paused ? ram - t->ram_at_pause : 0;
	out->dirty_pages_rate = t->dirty_rate;
	out->dirty_bytes_rate = t->dirty_rate * t->page_size;
	out->dirty_syncs = t->syncs;
	out->ndev = t->ndev;
	for (size_t i = 0; i < t->ndev; i++) {
		out->dev[i] = t->dev[i];
		uint64_t at = t->paused ? t->dev_at_pause[i]
					: t->dev[i].transferred;
		out->dev[i].precopy_bytes = at;
		out->dev[i].downtime_bytes = t->dev[i].transferred - at;
		moved += t->dev[i].transferred;
	}
	/* A source's last measured rate while pre-copy runs; otherwise
	 * (destination, a save, after the switchover) what moved so far
	 * over the time it took. */
	if (t->bytes_per_s > 0 && !t->paused)
		out->mbps = t->bytes_per_s * 8 / 1e6;
	else if (out->total_ms > 0)
		out->mbps = (double)moved * 8 / 1e3 / out->total_ms;
	out->nrounds = t->nkept + (t->paused ? 1 : 0);
	out->rounds_dropped = t->dropped;
	pthread_mutex_unlock(&t->lock);
}

size_t vfmig_mig_track_timeline(struct vfmig_mig_track *t,
				struct vfmig_mig_round *out, size_t max)
{
	size_t n = 0;

	if (!t)
		return 0;
	pthread_mutex_lock(&t->lock);
	if (t->started) {
		for (; n < t->nkept && n < max; n++)
			out[n] = t->rounds_kept[n];
		/* While the run goes on the stop-copy entry grows; its RAM
		 * part is known only at the end. */
		if (t->paused && n < max)
			stop_copy_entry(t, t->ended ? t->t_end : t->t_pause,
					t->ended ? t->ram_at_end
						 : t->ram_at_pause,
					&out[n++]);
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* ---- the engine's wrappers ---- */

static struct vfmig_mig_track *track_of(struct run *run)
{
	return run->prog ? run->prog->track : NULL;
}

static uint64_t ram_moved(struct run *run)
{
	return atomic_load(&run->prog->ram_bytes);
}

void mig_track_begin(struct run *run, bool source)
{
	const char *ids[VFMIG_MIG_TRACK_DEVS];
	size_t n = run->vm->ndev < VFMIG_MIG_TRACK_DEVS ? run->vm->ndev
						       : VFMIG_MIG_TRACK_DEVS;

	if (!track_of(run))
		return;
	for (size_t i = 0; i < n; i++)
		ids[i] = run->vm->devs[i].id;
	/* A destination counts from the source's arrival, not from the
	 * start of its wait. */
	vfmig_mig_track_begin(track_of(run), source ? run->t0 : mig_mono_ms(),
			      source,
			      run->vm->ram->size, run->vm->ram->page_size, n,
			      ids);
}

void mig_track_active(struct run *run)
{
	vfmig_mig_track_active(track_of(run), mig_mono_ms());
}

void mig_track_sync(struct run *run)
{
	if (track_of(run))
		vfmig_mig_track_sync(track_of(run), mig_mono_ms(),
				     vfmig_ram_dirty_pages(run->vm->ram));
}

void mig_track_round_start(struct run *run)
{
	if (track_of(run))
		vfmig_mig_track_round_start(track_of(run), mig_mono_ms(),
					    ram_moved(run));
}

void mig_track_dev(struct run *run, size_t i, uint64_t len)
{
	vfmig_mig_track_dev(track_of(run), i, len);
}

void mig_track_dev_remaining(struct run *run, size_t i, uint64_t bytes)
{
	vfmig_mig_track_dev_remaining(track_of(run), i, bytes);
}

void mig_track_round_end(struct run *run, double expected_ms,
			 double bytes_per_ms)
{
	/* No rate measured: the engine's prediction is a placeholder. */
	if (bytes_per_ms <= 0 || expected_ms >= 1e9)
		expected_ms = -1;
	if (track_of(run))
		vfmig_mig_track_round_end(track_of(run), mig_mono_ms(),
					  ram_moved(run),
					  vfmig_ram_dirty_pages(run->vm->ram),
					  expected_ms, bytes_per_ms * 1e3);
}

void mig_track_pause(struct run *run)
{
	if (track_of(run))
		vfmig_mig_track_pause(track_of(run), mig_mono_ms(),
				      ram_moved(run));
}

void mig_track_end(struct run *run, double end_ms, double downtime_ms)
{
	if (track_of(run))
		vfmig_mig_track_end(track_of(run),
				    end_ms > 0 ? end_ms : mig_mono_ms(),
				    ram_moved(run), downtime_ms);
}
