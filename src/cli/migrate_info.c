/* SPDX-License-Identifier: MIT */
/* query-migrate's progress keys and the report's timeline; see
 * migrate_info.h. */
#include <stdlib.h>
#include <time.h>

#include "migrate_info.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Whole milliseconds, as QEMU reports its times; a time not known is
 * left out. */
static void add_ms(struct json_object *o, const char *key, double ms)
{
	if (ms >= 0)
		json_object_object_add(o, key,
				       json_object_new_int64((int64_t)(ms + 0.5)));
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static struct json_object *ram_json(const struct vfmig_mig_stats *s,
				    uint64_t ram_bytes)
{
	struct json_object *ram = json_object_new_object();

	add_u64(ram, "transferred", ram_bytes);
	if (s->source && s->ram_remaining_known)
		add_u64(ram, "remaining", s->ram_remaining);
	add_u64(ram, "total", s->ram_total);
	add_u64(ram, "page-size", s->page_size);
	if (s->source) {
		add_u64(ram, "dirty-pages-rate",
			(uint64_t)(s->dirty_pages_rate + 0.5));
		add_u64(ram, "dirty-bytes-rate",
			(uint64_t)(s->dirty_bytes_rate + 0.5));
		add_u64(ram, "dirty-sync-count", s->dirty_syncs);
	}
	json_object_object_add(ram, "mbps", json_object_new_double(s->mbps));
	add_u64(ram, "precopy-bytes", s->ram_precopy_bytes);
	add_u64(ram, "downtime-bytes", s->ram_downtime_bytes);
	return ram;
}

void vfmig_migrate_info_add(struct json_object *o, struct vfmig_mig_track *t,
			    uint64_t ram_bytes)
{
	struct vfmig_mig_stats s;
	struct json_object *devs, *vfio;
	uint64_t dev_total = 0;

	vfmig_mig_track_stats(t, now_ms(), ram_bytes, &s);
	if (!s.started)
		return;
	add_ms(o, "total-time", s.total_ms);
	add_ms(o, "setup-time", s.setup_ms);
	if (s.source && !s.ended)
		add_ms(o, "expected-downtime", s.expected_downtime_ms);
	add_ms(o, "downtime", s.downtime_ms);
	add_ms(o, "switchover-time", s.switchover_ms);
	json_object_object_add(o, "ram", ram_json(&s, ram_bytes));
	devs = json_object_new_array();
	for (size_t i = 0; i < s.ndev; i++) {
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "id",
				       json_object_new_string(s.dev[i].id));
		add_u64(d, "transferred", s.dev[i].transferred);
		if (s.source && s.dev[i].remaining_known)
			add_u64(d, "remaining", s.dev[i].remaining);
		add_u64(d, "precopy-bytes", s.dev[i].precopy_bytes);
		add_u64(d, "downtime-bytes", s.dev[i].downtime_bytes);
		json_object_array_add(devs, d);
		dev_total += s.dev[i].transferred;
	}
	json_object_object_add(o, "devices", devs);
	/* QEMU's total over its VFIO devices. */
	vfio = json_object_new_object();
	add_u64(vfio, "transferred", dev_total);
	json_object_object_add(o, "vfio", vfio);
}

static struct json_object *round_json(const struct vfmig_mig_round *e,
				      size_t ndev)
{
	struct json_object *o = json_object_new_object();
	struct json_object *devs = json_object_new_array();

	json_object_object_add(o, "phase",
			       json_object_new_string(e->stop_copy ? "stop-copy"
								   : "precopy"));
	json_object_object_add(o, "round", json_object_new_int((int)e->round));
	json_object_object_add(o, "start_ms",
			       json_object_new_double(e->start_ms));
	json_object_object_add(o, "end_ms", json_object_new_double(e->end_ms));
	add_u64(o, "ram_bytes", e->ram_bytes);
	for (size_t i = 0; i < ndev; i++)
		json_object_array_add(devs,
				      json_object_new_uint64(e->dev_bytes[i]));
	json_object_object_add(o, "device_bytes", devs);
	add_u64(o, "dirty_pages", e->dirty_pages);
	json_object_object_add(o, "dirty_pages_rate",
			       json_object_new_double(e->dirty_pages_rate));
	json_object_object_add(o, "expected_downtime_ms",
			       e->expected_downtime_ms >= 0
				       ? json_object_new_double(
						 e->expected_downtime_ms)
				       : NULL);
	json_object_object_add(o, "mbps", json_object_new_double(e->mbps));
	return o;
}

void vfmig_migrate_info_timeline(struct json_object *rep,
				 struct vfmig_mig_track *t)
{
	struct vfmig_mig_stats s;
	struct vfmig_mig_round *tl;
	struct json_object *a = json_object_new_array();
	struct json_object *ids = json_object_new_array();
	size_t n = 0;

	vfmig_mig_track_stats(t, now_ms(), 0, &s);
	tl = calloc(VFMIG_MIG_TIMELINE_MAX + 1, sizeof(*tl));
	if (tl)
		n = vfmig_mig_track_timeline(t, tl, VFMIG_MIG_TIMELINE_MAX + 1);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, round_json(&tl[i], s.ndev));
	free(tl);
	for (size_t i = 0; i < s.ndev; i++)
		json_object_array_add(ids, json_object_new_string(s.dev[i].id));
	json_object_object_add(rep, "timeline", a);
	json_object_object_add(rep, "timeline_devices", ids);
	json_object_object_add(rep, "timeline_rounds_dropped",
			       json_object_new_int((int)s.rounds_dropped));
	json_object_object_add(rep, "switchover_ms",
			       s.switchover_ms >= 0
				       ? json_object_new_double(s.switchover_ms)
				       : NULL);
}
