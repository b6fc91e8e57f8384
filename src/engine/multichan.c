/* SPDX-License-Identifier: MIT */
/* RAM over several connections: the channel group of one migration. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine/multichan.h"
#include "protocol/tscale.h"

#define DEFAULT_IO_TIMEOUT_MS 30000

struct mchan_one {
	struct vfmig_mchan *g;
	unsigned index;
	struct vfmig_chan *chan;
	struct vfmig_stream_writer *w; /* source */
	struct vfmig_stream_reader *r; /* destination */
	struct vfmig_ram_cursor cur;   /* source: this sender's file extent */
	pthread_t thread;
	bool thread_live;
	/* Source, one batch: the thread's arguments and result. */
	struct vfmig_ram *ram;
	uint64_t budget;
	struct vfmig_ram_stats st;
	/* Both: the thread's outcome. */
	int rc;
	char err[320];
	uint64_t loaded; /* destination: page data bytes loaded */
};

struct vfmig_mchan {
	unsigned n;
	char id[VFMIG_MCHAN_ID_LEN + 1];
	char count[8];
	struct mchan_one ch[VFMIG_MCHAN_MAX];
	_Atomic uint64_t *progress;
	struct vfmig_ram *ram;       /* destination */
	struct vfmig_chan *main;     /* destination */
	atomic_int first_failed;     /* index of the first failed channel, -1 */
	atomic_bool stop;            /* destination: receivers stop */
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int vfmig_mchan_check(unsigned n, const char *uri, char *err, size_t errlen)
{
	struct vfmig_chan_uri u;

	if (n > VFMIG_MCHAN_MAX) {
		snprintf(err, errlen, "channels must be 1..%u, not %u",
			 VFMIG_MCHAN_MAX, n);
		return -EINVAL;
	}
	if (n <= 1)
		return 0;
	if (vfmig_chan_parse_uri(uri, &u, NULL, 0) == 0 &&
	    u.kind == VFMIG_CHAN_FILE) {
		snprintf(err, errlen, "channels %u needs a tcp: or unix: URI; "
			 "a file: URI is one stream (use channels 1)", n);
		return -EINVAL;
	}
	return 0;
}

unsigned vfmig_mchan_count(const struct vfmig_mchan *g)
{
	return g ? g->n : 1;
}

const char *vfmig_mchan_id(const struct vfmig_mchan *g)
{
	return g->id;
}

uint64_t vfmig_mchan_bytes(const struct vfmig_mchan *g)
{
	uint64_t n = 0;

	for (unsigned i = 0; g && i < g->n; i++) {
		if (g->ch[i].w)
			n += vfmig_stream_writer_bytes(g->ch[i].w);
		if (g->ch[i].r)
			n += vfmig_stream_reader_offset(g->ch[i].r);
	}
	return n;
}

static struct vfmig_mchan *group_new(unsigned n)
{
	struct vfmig_mchan *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->n = n;
	snprintf(g->count, sizeof(g->count), "%u", n);
	atomic_init(&g->first_failed, -1);
	atomic_init(&g->stop, false);
	for (unsigned i = 0; i < n; i++) {
		g->ch[i].g = g;
		g->ch[i].index = i;
	}
	return g;
}

void vfmig_mchan_free(struct vfmig_mchan *g)
{
	if (!g)
		return;
	atomic_store(&g->stop, true);
	for (unsigned i = 0; i < g->n; i++)
		if (g->ch[i].thread_live)
			vfmig_chan_shutdown(g->ch[i].chan, false);
	for (unsigned i = 0; i < g->n; i++) {
		struct mchan_one *c = &g->ch[i];
		if (c->thread_live)
			pthread_join(c->thread, NULL);
		vfmig_stream_writer_free(c->w);
		vfmig_stream_reader_free(c->r);
		vfmig_chan_close(c->chan);
	}
	free(g);
}

/* A thread of channel c failed with c->err: the first one is the cause;
 * every channel is shut so the others end soon. */
static void channel_failed(struct mchan_one *c, bool shut_all)
{
	struct vfmig_mchan *g = c->g;
	int none = -1;

	atomic_compare_exchange_strong(&g->first_failed, &none,
				       (int)c->index);
	if (shut_all)
		for (unsigned i = 0; i < g->n; i++)
			vfmig_chan_shutdown(g->ch[i].chan, false);
	else
		vfmig_chan_shutdown(c->chan, false);
	/* The main reader would wait for the source; it stops now. */
	if (g->main)
		vfmig_chan_shutdown(g->main, true);
}

static bool first_error(struct vfmig_mchan *g, char *err, size_t errlen)
{
	int i = atomic_load(&g->first_failed);

	if (i < 0)
		return false;
	snprintf(err, errlen, "%s", g->ch[i].err);
	return true;
}

/* ---- source ---- */

int vfmig_mchan_src_new(struct vfmig_mchan **out, unsigned n)
{
	uint8_t raw[VFMIG_MCHAN_ID_LEN / 2];
	struct vfmig_mchan *g;
	size_t got = 0;

	if (n < 2 || n > VFMIG_MCHAN_MAX)
		return -EINVAL;
	while (got < sizeof(raw)) {
		ssize_t k = getrandom(raw + got, sizeof(raw) - got, 0);
		if (k < 0 && errno != EINTR)
			return -errno;
		if (k > 0)
			got += (size_t)k;
	}
	g = group_new(n);
	if (!g)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(g->id + 2 * i, 3, "%02x", raw[i]);
	*out = g;
	return 0;
}

size_t vfmig_mchan_main_info(const struct vfmig_mchan *g,
			     struct vfmig_stream_kv *kv)
{
	kv[0] = (struct vfmig_stream_kv){ "channels", g->count };
	kv[1] = (struct vfmig_stream_kv){ "migration-id", g->id };
	return 2;
}

int vfmig_mchan_src_connect(struct vfmig_mchan *g, const char *uri,
			    int connect_timeout_ms, int timeout_ms,
			    enum vfmig_stream_csum csum, char *err,
			    size_t errlen)
{
	for (unsigned i = 0; i < g->n; i++) {
		struct mchan_one *c = &g->ch[i];
		char cerr[256] = "", idx[8];
		int r;

		r = vfmig_chan_connect(uri, connect_timeout_ms, &c->chan, cerr,
				       sizeof(cerr));
		if (r < 0) {
			snprintf(err, errlen, "RAM channel %u of %u: %s", i,
				 g->n, cerr[0] ? cerr : strerror(-r));
			return r;
		}
		vfmig_chan_set_timeout(c->chan, timeout_ms);
		snprintf(idx, sizeof(idx), "%u", i);
		const struct vfmig_stream_kv info[] = {
			{ "producer", "vfmig" },
			{ "migration-id", g->id },
			{ "channel", idx },
			{ "channels", g->count },
		};
		r = vfmig_stream_writer_open_csum(&c->w, vfmig_chan_io(c->chan),
						  csum);
		if (r == 0)
			vfmig_chan_tune_writer(c->chan, c->w);
		if (r == 0)
			r = vfmig_stream_write_info(c->w, info, 4);
		if (r == 0)
			r = vfmig_stream_write_device_list(c->w, NULL, 0);
		if (r == 0)
			r = vfmig_io_flush(vfmig_chan_io(c->chan));
		if (r < 0) {
			snprintf(err, errlen, "RAM channel %u of %u: "
				 "stream header: %s", i, g->n, strerror(-r));
			return r;
		}
	}
	return 0;
}

void vfmig_mchan_src_tune(struct vfmig_mchan *g, struct vfmig_pace *p,
			  int timeout_ms)
{
	for (unsigned i = 0; g && i < g->n; i++)
		if (g->ch[i].chan) {
			vfmig_chan_set_pace(g->ch[i].chan, p);
			vfmig_chan_set_timeout(g->ch[i].chan, timeout_ms);
		}
}

bool vfmig_mchan_stalled(const struct vfmig_mchan *g)
{
	for (unsigned i = 0; g && i < g->n; i++)
		if (vfmig_chan_stalled(g->ch[i].chan))
			return true;
	return false;
}

static void *send_thread(void *arg)
{
	struct mchan_one *c = arg;

	c->rc = vfmig_ram_send_stripe(c->ram, &c->cur, c->w, c->budget,
				      c->index, c->g->n, &c->st);
	if (c->rc < 0) {
		const char *why = vfmig_stream_writer_error(c->w);
		snprintf(c->err, sizeof(c->err), "RAM channel %u: %s",
			 c->index, why[0] ? why : strerror(-c->rc));
		channel_failed(c, true);
	} else if (c->g->progress) {
		atomic_fetch_add(c->g->progress, c->st.bytes);
	}
	return NULL;
}

int vfmig_mchan_send_ram(struct vfmig_mchan *g, struct vfmig_ram *ram,
			 uint64_t budget, _Atomic uint64_t *progress,
			 struct vfmig_ram_stats *st, bool *drained, char *err,
			 size_t errlen)
{
	g->progress = progress;
	for (unsigned i = 0; i < g->n; i++) {
		struct mchan_one *c = &g->ch[i];
		c->ram = ram;
		c->budget = budget;
		c->rc = 0;
		c->err[0] = '\0';
		memset(&c->st, 0, sizeof(c->st));
		/* The largest extent the block knows (the announcement's
		 * walk), so no sender scans it again; read before any thread
		 * runs, and written by none of them. */
		vfmig_ram_known_note(&c->cur.known, ram->known.big_start,
				     ram->known.big_end);
		c->thread_live = pthread_create(&c->thread, NULL, send_thread,
						c) == 0;
		if (!c->thread_live)
			send_thread(c); /* no thread: this one sends it */
	}
	*drained = true;
	for (unsigned i = 0; i < g->n; i++) {
		struct mchan_one *c = &g->ch[i];
		if (c->thread_live)
			pthread_join(c->thread, NULL);
		c->thread_live = false;
		st->pages += c->st.pages;
		st->zero_pages += c->st.zero_pages;
		st->hole_pages += c->st.hole_pages;
		st->bytes += c->st.bytes;
		st->records += c->st.records;
		if (budget && c->st.bytes >= budget)
			*drained = false;
	}
	if (first_error(g, err, errlen))
		return g->ch[atomic_load(&g->first_failed)].rc;
	return 0;
}

int vfmig_mchan_src_end(struct vfmig_mchan *g, char *err, size_t errlen)
{
	for (unsigned i = 0; i < g->n; i++) {
		int r = vfmig_stream_writer_end(g->ch[i].w);
		if (r < 0) {
			const char *why = vfmig_stream_writer_error(g->ch[i].w);
			snprintf(err, errlen, "RAM channel %u: finishing its "
				 "stream: %s", i, why[0] ? why : strerror(-r));
			return r;
		}
	}
	return 0;
}

/* ---- destination ---- */

/* "0".."65535" strictly (no sign, no leading zero but "0"): 0 or -1. */
static int parse_small(struct vfmig_stream_str s, unsigned *out)
{
	unsigned v = 0;

	if (s.len == 0 || s.len > 5 || (s.len > 1 && s.p[0] == '0'))
		return -1;
	for (uint16_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s.p[i] - '0');
	}
	*out = v;
	return 0;
}

static bool valid_id(struct vfmig_stream_str s)
{
	if (s.len != VFMIG_MCHAN_ID_LEN)
		return false;
	for (uint16_t i = 0; i < s.len; i++)
		if (!((s.p[i] >= '0' && s.p[i] <= '9') ||
		      (s.p[i] >= 'a' && s.p[i] <= 'f')))
			return false;
	return true;
}

/* Shown in messages: at most 40 bytes of a peer's string. */
#define SHOW(s) (int)((s).len > 40 ? 40 : (s).len), (s).p

int vfmig_mchan_parse_info(const struct vfmig_stream_record *rec,
			   unsigned *n, char *id, size_t idlen, char *err,
			   size_t errlen)
{
	bool have_n = false, have_id = false;

	if (rec->type != VFMIG_REC_STREAM_INFO)
		return 0;
	for (uint16_t k = 0; k < rec->d.u.info.count; k++) {
		const struct vfmig_stream_kv_view *kv = &rec->d.u.info.kv[k];
		if (vfmig_stream_str_eq(kv->key, "channels")) {
			if (parse_small(kv->value, n) < 0 || *n < 2 ||
			    *n > VFMIG_MCHAN_MAX) {
				snprintf(err, errlen, "channels \"%.*s\" is "
					 "not 2..%u", SHOW(kv->value),
					 VFMIG_MCHAN_MAX);
				return -EBADMSG;
			}
			have_n = true;
		} else if (vfmig_stream_str_eq(kv->key, "migration-id")) {
			if (!valid_id(kv->value) || idlen <= kv->value.len) {
				snprintf(err, errlen, "migration-id \"%.*s\" "
					 "is not %u hex digits",
					 SHOW(kv->value), VFMIG_MCHAN_ID_LEN);
				return -EBADMSG;
			}
			memcpy(id, kv->value.p, kv->value.len);
			id[kv->value.len] = '\0';
			have_id = true;
		}
	}
	if (have_n != have_id) {
		snprintf(err, errlen, "the stream announces %s without %s",
			 have_n ? "channels" : "a migration-id",
			 have_n ? "a migration-id" : "channels");
		return -EBADMSG;
	}
	return have_n ? 1 : 0;
}

bool vfmig_mchan_runs_in_stripe(const struct vfmig_stream_record *rec,
				unsigned index, unsigned count)
{
	const typeof(rec->d.u.ram_pages) *rp = &rec->d.u.ram_pages;
	uint64_t sp = vfmig_ram_stripe_pages(rp->page_size);

	if (count <= 1)
		return true;
	for (uint32_t i = 0; i < rp->nruns; i++) {
		uint64_t first = rp->runs[i].addr / rp->page_size;
		uint64_t last = first + rp->runs[i].npages - 1;
		if (rp->runs[i].npages == 0 || first / sp != last / sp ||
		    vfmig_ram_stripe_of(first, sp, count) != index)
			return false;
	}
	return true;
}

/* Page data of this channel's stripes is received in place; anything
 * else is buffered, and receive() refuses its record. */
static void *place_in_stripe(void *priv, const struct vfmig_stream_str *block,
			     uint32_t page_size, uint64_t addr, uint64_t len)
{
	struct mchan_one *c = priv;
	uint64_t sp = vfmig_ram_stripe_pages(page_size);
	uint64_t first = addr / page_size, last = first + len / page_size - 1;

	if (c->g->n > 1 && (!len || first / sp != last / sp ||
			    vfmig_ram_stripe_of(first, sp, c->g->n) != c->index))
		return NULL;
	return vfmig_ram_place(c->g->ram, block, page_size, addr, len);
}

static int receive(struct mchan_one *c)
{
	struct vfmig_mchan *g = c->g;
	struct vfmig_stream_record rec;
	char lerr[256];
	int r;

	while ((r = vfmig_stream_next(c->r, &rec)) == 1) {
		if (atomic_load(&g->stop)) {
			snprintf(c->err, sizeof(c->err), "RAM channel %u: "
				 "stopped", c->index);
			return -ECANCELED;
		}
		switch (rec.type) {
		case VFMIG_REC_RAM_PAGES:
		case VFMIG_REC_RAM_PAGES_LIVE: {
			/* A copy of the block keeps vfmig_ram_load's memory
			 * of the file out of the shared block. */
			struct vfmig_ram view = *g->ram;
			uint64_t bytes = 0;
			if (!vfmig_mchan_runs_in_stripe(&rec, c->index, g->n)) {
				snprintf(c->err, sizeof(c->err),
					 "RAM channel %u: RAM pages at offset "
					 "%llu carries pages of another channel",
					 c->index, (unsigned long long)rec.offset);
				return -EPROTO;
			}
			r = vfmig_ram_load(&view, &rec, lerr, sizeof(lerr));
			if (r < 0) {
				snprintf(c->err, sizeof(c->err),
					 "RAM channel %u: %s", c->index, lerr);
				return r;
			}
			for (uint32_t i = 0; i < rec.d.u.ram_pages.nruns; i++)
				if (!rec.d.u.ram_pages.runs[i].zero)
					bytes += (uint64_t)rec.d.u.ram_pages
							 .runs[i].npages *
						 rec.d.u.ram_pages.page_size;
			c->loaded += bytes;
			if (g->progress)
				atomic_fetch_add(g->progress, bytes);
			break;
		}
		case VFMIG_REC_DEVICE_LIST:
			if (rec.d.u.device_list.count) {
				snprintf(c->err, sizeof(c->err), "RAM channel "
					 "%u: lists %u devices; a RAM channel "
					 "carries none", c->index,
					 rec.d.u.device_list.count);
				return -EPROTO;
			}
			break;
		case VFMIG_REC_STREAM_INFO:
		case VFMIG_REC_END:
			break;
		default:
			snprintf(c->err, sizeof(c->err), "RAM channel %u: a %s "
				 "record at offset %llu; a RAM channel carries "
				 "only RAM_PAGES", c->index,
				 vfmig_stream_type_name(rec.type),
				 (unsigned long long)rec.offset);
			return -EPROTO;
		}
	}
	if (r < 0)
		snprintf(c->err, sizeof(c->err), "RAM channel %u: %s",
			 c->index, vfmig_stream_reader_error(c->r));
	return r;
}

static void *recv_thread(void *arg)
{
	struct mchan_one *c = arg;

	c->rc = receive(c);
	if (c->rc < 0)
		channel_failed(c, false);
	return NULL;
}

/* Reads the first record of connection number k (1-based, in the order
 * they came) and puts it in its channel's place. */
static int take_connection(struct vfmig_mchan *g, struct vfmig_chan *chan,
			   unsigned k, int wait_ms, char *err, size_t errlen)
{
	struct vfmig_stream_reader *r = NULL;
	struct vfmig_stream_record rec;
	bool have_id = false, have_n = false, have_idx = false;
	unsigned idx = 0, n = 0;
	char rerr[256] = "";
	int rc;

	vfmig_chan_set_timeout(chan, wait_ms);
	rc = vfmig_stream_reader_open(&r, vfmig_chan_io(chan), rerr,
				      sizeof(rerr));
	if (rc == 0) {
		rc = vfmig_stream_next(r, &rec);
		if (rc < 0)
			snprintf(rerr, sizeof(rerr), "%s",
				 vfmig_stream_reader_error(r));
		else if (rc == 0 || rec.type != VFMIG_REC_STREAM_INFO) {
			snprintf(rerr, sizeof(rerr), "it begins with %s, not "
				 "STREAM_INFO", rc == 0 ? "nothing"
				 : vfmig_stream_type_name(rec.type));
			rc = -EPROTO;
		}
	}
	for (uint16_t i = 0; rc == 1 && i < rec.d.u.info.count; i++) {
		const struct vfmig_stream_kv_view *kv = &rec.d.u.info.kv[i];
		if (vfmig_stream_str_eq(kv->key, "migration-id")) {
			if (!vfmig_stream_str_eq(kv->value, g->id)) {
				rc = -EPERM;
				snprintf(rerr, sizeof(rerr), "it names migration "
					 "id \"%.*s\", this migration's is "
					 "\"%s\"", SHOW(kv->value), g->id);
			}
			have_id = true;
		} else if (vfmig_stream_str_eq(kv->key, "channel")) {
			have_idx = parse_small(kv->value, &idx) == 0;
			if (!have_idx || idx >= g->n) {
				rc = -EPROTO;
				snprintf(rerr, sizeof(rerr), "channel \"%.*s\" "
					 "is not 0..%u", SHOW(kv->value),
					 g->n - 1);
			}
		} else if (vfmig_stream_str_eq(kv->key, "channels")) {
			have_n = parse_small(kv->value, &n) == 0;
			if (!have_n || n != g->n) {
				rc = -EPROTO;
				snprintf(rerr, sizeof(rerr), "it counts "
					 "channels \"%.*s\", the main stream "
					 "%u", SHOW(kv->value), g->n);
			}
		}
	}
	if (rc == 1 && (!have_id || !have_idx || !have_n)) {
		rc = -EPROTO;
		snprintf(rerr, sizeof(rerr), "its STREAM_INFO lacks %s",
			 !have_id ? "migration-id"
			 : !have_idx ? "channel" : "channels");
	}
	if (rc == 1 && g->ch[idx].chan) {
		rc = -EPROTO;
		snprintf(rerr, sizeof(rerr), "channel %u came a second time",
			 idx);
	}
	if (rc != 1) {
		snprintf(err, errlen, "RAM channel connection %u of %u: %s", k,
			 g->n, rerr[0] ? rerr : strerror(-rc));
		vfmig_stream_reader_free(r);
		vfmig_chan_close(chan);
		return rc < 0 ? rc : -EPROTO;
	}
	g->ch[idx].chan = chan;
	g->ch[idx].r = r;
	/* The guest runs only once every channel's stream was accepted. */
	if (g->ram)
		vfmig_stream_reader_set_ram_place(r, place_in_stripe, &g->ch[idx]);
	return 0;
}

int vfmig_mchan_dst_accept(struct vfmig_mchan **out,
			   const struct vfmig_mchan_dst_cfg *cfg, char *err,
			   size_t errlen)
{
	int limit = cfg->timeout_ms > 0 ? cfg->timeout_ms
					: VFMIG_MCHAN_ACCEPT_TIMEOUT_MS;
	struct vfmig_mchan *g;
	double start = mono_ms();
	unsigned got = 0;
	int r = 0;

	if (cfg->n < 2 || cfg->n > VFMIG_MCHAN_MAX || !cfg->listener ||
	    strlen(cfg->id) != VFMIG_MCHAN_ID_LEN) {
		snprintf(err, errlen, "RAM channels: no listener, or a bad "
			 "count or id");
		return -EINVAL;
	}
	g = group_new(cfg->n);
	if (!g) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(g->id, cfg->id, VFMIG_MCHAN_ID_LEN + 1);
	g->ram = cfg->ram;
	g->progress = cfg->progress;
	while (got < g->n) {
		struct vfmig_chan *chan;
		char aerr[256] = "";
		double left = limit - (mono_ms() - start);

		if (cfg->cancel && atomic_load(cfg->cancel)) {
			snprintf(err, errlen, "cancelled while waiting for "
				 "the RAM channels");
			r = -ECANCELED;
			break;
		}
		if (left <= 0) {
			snprintf(err, errlen, "only %u of the %u announced RAM "
				 "channels connected within %d ms", got, g->n,
				 limit);
			r = -ETIMEDOUT;
			break;
		}
		r = vfmig_chan_accept(cfg->listener, left < 200 ? (int)left + 1
							      : 200,
				      &chan, aerr, sizeof(aerr));
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "RAM channels: %s",
				 aerr[0] ? aerr : strerror(-r));
			break;
		}
		got++;
		r = take_connection(g, chan, got, (int)left + 1, err, errlen);
		if (r < 0)
			break;
	}
	if (r < 0) {
		vfmig_mchan_free(g);
		return r;
	}
	/* All there: the main stream may stop on a channel's failure. */
	g->main = cfg->main;
	if (cfg->shared && cfg->main)
		vfmig_chan_share_progress(cfg->main, cfg->shared);
	for (unsigned i = 0; i < g->n; i++) {
		struct mchan_one *c = &g->ch[i];
		vfmig_chan_set_timeout(c->chan,
				       vfw_scaled_ms(DEFAULT_IO_TIMEOUT_MS));
		vfmig_chan_share_progress(c->chan, cfg->shared);
		r = pthread_create(&c->thread, NULL, recv_thread, c);
		if (r != 0) {
			snprintf(err, errlen, "RAM channel %u: cannot start "
				 "its thread: %s", i, strerror(r));
			vfmig_mchan_free(g);
			return -r;
		}
		c->thread_live = true;
	}
	*out = g;
	return 0;
}

bool vfmig_mchan_dst_failed(struct vfmig_mchan *g, char *err, size_t errlen)
{
	return g && first_error(g, err, errlen);
}

int vfmig_mchan_dst_wait(struct vfmig_mchan *g,
			 struct vfmig_chan_listener *listener,
			 uint64_t *ram_bytes, char *err, size_t errlen)
{
	struct vfmig_chan *extra = NULL;

	for (unsigned i = 0; i < g->n; i++) {
		struct mchan_one *c = &g->ch[i];
		if (c->thread_live)
			pthread_join(c->thread, NULL);
		c->thread_live = false;
		*ram_bytes += c->loaded;
	}
	/* Zero runs punched the file: what a sender knew of it is stale. */
	memset(&g->ram->known, 0, sizeof(g->ram->known));
	if (first_error(g, err, errlen))
		return g->ch[atomic_load(&g->first_failed)].rc;
	if (listener && vfmig_chan_accept(listener, 0, &extra, NULL, 0) == 0) {
		vfmig_chan_close(extra);
		snprintf(err, errlen, "a connection beyond the %u announced "
			 "RAM channels came in", g->n);
		return -EPROTO;
	}
	return 0;
}
