/* SPDX-License-Identifier: MIT */
/*
 * The record catalogue of format 1.0: one table entry per record type with
 * its name, the writer's MUST_UNDERSTAND choice, a bounds-checked payload
 * decoder and a one-line summary printer. Payload layouts are in
 * docs/stream-format.md, "Record catalogue".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "internal.h"

void vfmig__err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void vfmig__print_hex(FILE *f, const uint8_t *p, size_t len, size_t max)
{
	size_t i;

	for (i = 0; i < len && i < max; i++)
		fprintf(f, " %02x", p[i]);
	if (len > max)
		fprintf(f, " ...");
}

bool vfmig_stream_str_eq(struct vfmig_stream_str s, const char *c)
{
	return strlen(c) == s.len && memcmp(s.p, c, s.len) == 0;
}

/* A string: be16 length, then bytes without NUL. */
static bool cur_str(struct vfmig__cur *c, struct vfmig_stream_str *s)
{
	uint16_t n = vfmig__cur_u16(c);
	const uint8_t *p = vfmig__cur_take(c, n);

	if (!p)
		return false;
	if (memchr(p, 0, n)) {
		c->bad = true;
		return false;
	}
	s->p = (const char *)p;
	s->len = n;
	return true;
}

/* Common ending of a decoder: the cursor must be good and fully used. */
static int finish(struct vfmig__cur *c, const char *what, char *err, size_t errlen)
{
	if (c->bad) {
		vfmig__err(err, errlen, "%s payload truncated or malformed at payload byte %zu",
			   what, c->pos);
		return -EBADMSG;
	}
	if (vfmig__cur_left(c)) {
		vfmig__err(err, errlen, "%s payload has %zu unexpected trailing bytes", what,
			   vfmig__cur_left(c));
		return -EBADMSG;
	}
	return 0;
}

/* ---- decoders ---- */

static int dec_stream_info(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
		    char *err, size_t errlen)
{
	struct vfmig__cur c;
	uint16_t i, n;

	vfmig__cur_init(&c, p, len);
	n = vfmig__cur_u16(&c);
	if (n > VFMIG_STREAM_MAX_INFO || (size_t)n * 4 > vfmig__cur_left(&c)) {
		vfmig__err(err, errlen, "STREAM_INFO count %u too large", n);
		return -EBADMSG;
	}
	d->u.info.kv = calloc(n ? n : 1, sizeof(*d->u.info.kv));
	if (!d->u.info.kv)
		return -ENOMEM;
	d->u.info.count = n;
	for (i = 0; i < n; i++) {
		cur_str(&c, &d->u.info.kv[i].key);
		cur_str(&c, &d->u.info.kv[i].value);
	}
	return finish(&c, "STREAM_INFO", err, errlen);
}

static int dec_device_list(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
			   char *err, size_t errlen)
{
	struct vfmig_stream_device_view *v;
	struct vfmig__cur c;
	uint16_t i, j, n;

	vfmig__cur_init(&c, p, len);
	n = vfmig__cur_u16(&c);
	if (n > VFMIG_STREAM_MAX_DEVICES || (size_t)n * 14 > vfmig__cur_left(&c)) {
		vfmig__err(err, errlen, "DEVICE_LIST count %u too large", n);
		return -EBADMSG;
	}
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	d->u.device_list.dev = v;
	d->u.device_list.count = n;
	for (i = 0; i < n && !c.bad; i++) {
		cur_str(&c, &v[i].id);
		cur_str(&c, &v[i].type);
		cur_str(&c, &v[i].interface);
		v[i].instance = vfmig__cur_u32(&c);
		v[i].type_version = vfmig__cur_u32(&c);
		if (c.bad)
			break;
		if (v[i].id.len == 0) {
			vfmig__err(err, errlen, "DEVICE_LIST device %u has an empty id", i);
			return -EBADMSG;
		}
		for (j = 0; j < i; j++) {
			if (v[j].id.len == v[i].id.len &&
			    memcmp(v[j].id.p, v[i].id.p, v[i].id.len) == 0) {
				vfmig__err(err, errlen, "DEVICE_LIST names device '%.*s' twice",
					   v[i].id.len, v[i].id.p);
				return -EBADMSG;
			}
		}
	}
	return finish(&c, "DEVICE_LIST", err, errlen);
}

static int dec_device_begin(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
			    char *err, size_t errlen)
{
	struct vfmig__cur c;
	uint8_t reserved;
	int rc;

	vfmig__cur_init(&c, p, len);
	d->u.device_begin.dev = vfmig__cur_u16(&c);
	d->u.device_begin.phase = vfmig__cur_u8(&c);
	reserved = vfmig__cur_u8(&c);
	rc = finish(&c, "DEVICE_BEGIN", err, errlen);
	if (rc < 0)
		return rc;
	if (d->u.device_begin.phase < VFMIG_PHASE_SETUP ||
	    d->u.device_begin.phase > VFMIG_PHASE_FINAL || reserved) {
		vfmig__err(err, errlen, "DEVICE_BEGIN has phase %u (1..3) and reserved byte %u (0)",
			   d->u.device_begin.phase, reserved);
		return -EBADMSG;
	}
	return 0;
}

static int dec_device_data(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
			   char *err, size_t errlen)
{
	if (len < 2) {
		vfmig__err(err, errlen, "DEVICE_DATA payload of %u bytes, need 2 or more", len);
		return -EBADMSG;
	}
	d->u.device_data.dev = get_be16(p);
	d->u.device_data.len = len - 2;
	d->u.device_data.data = p + 2;
	d->u.device_data.forwarded = false;
	return 0;
}

static int dec_device_end(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
			  char *err, size_t errlen)
{
	struct vfmig__cur c;

	vfmig__cur_init(&c, p, len);
	d->u.device_end.dev = vfmig__cur_u16(&c);
	return finish(&c, "DEVICE_END", err, errlen);
}

static int dec_type_state(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
			  char *err, size_t errlen)
{
	char ferr[200];
	int rc;

	if (len < 2) {
		vfmig__err(err, errlen, "TYPE_STATE payload of %u bytes, need 2 or more", len);
		return -EBADMSG;
	}
	d->u.type_state.dev = get_be16(p);
	d->u.type_state.len = len - 2;
	d->u.type_state.state = p + 2;
	ferr[0] = 0;
	rc = vfmig_fields_validate(p + 2, len - 2, ferr, sizeof(ferr));
	if (rc < 0)
		vfmig__err(err, errlen, "TYPE_STATE: %s", ferr);
	return rc;
}

static int dec_vcpu_state(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
			  char *err, size_t errlen)
{
	char ferr[200];
	int rc;

	if (len < 2) {
		vfmig__err(err, errlen, "VCPU_STATE payload of %u bytes, need 2 or more", len);
		return -EBADMSG;
	}
	d->u.vcpu_state.vcpu = get_be16(p);
	if (d->u.vcpu_state.vcpu >= VFMIG_STREAM_MAX_VCPUS) {
		vfmig__err(err, errlen, "VCPU_STATE: vCPU index %u not below %u",
			   d->u.vcpu_state.vcpu, VFMIG_STREAM_MAX_VCPUS);
		return -EBADMSG;
	}
	d->u.vcpu_state.len = len - 2;
	d->u.vcpu_state.state = p + 2;
	ferr[0] = 0;
	rc = vfmig_fields_validate(p + 2, len - 2, ferr, sizeof(ferr));
	if (rc < 0)
		vfmig__err(err, errlen, "VCPU_STATE: %s", ferr);
	return rc;
}

/* RAM_PAGES, and RAM_PAGES_LIVE (live): the same, then a u32 per data
 * page. Only the reader can compare those with the pages (it knows the
 * algorithm); here the table's length is checked. */
static int dec_ram_common(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
			  char *err, size_t errlen, bool live)
{
	const char *what = live ? "RAM_PAGES_LIVE" : "RAM_PAGES";
	struct vfmig_stream_ram_run *runs;
	struct vfmig__cur c;
	uint32_t i, n, ps;
	uint64_t bytes, data_pages = 0;

	vfmig__cur_init(&c, p, len);
	cur_str(&c, &d->u.ram_pages.block);
	ps = vfmig__cur_u32(&c);
	n = vfmig__cur_u32(&c);
	if (c.bad)
		return finish(&c, what, err, errlen);
	if (ps < 512 || ps > (1u << 30) || (ps & (ps - 1))) {
		vfmig__err(err, errlen, "%s page size %u is not a power of two in 512..1G",
			   what, ps);
		return -EBADMSG;
	}
	if (n > vfmig__cur_left(&c) / 13) {
		vfmig__err(err, errlen, "%s run count %u too large", what, n);
		return -EBADMSG;
	}
	runs = calloc(n ? n : 1, sizeof(*runs));
	if (!runs)
		return -ENOMEM;
	d->u.ram_pages.page_size = ps;
	d->u.ram_pages.nruns = n;
	d->u.ram_pages.runs = runs;
	for (i = 0; i < n && !c.bad; i++) {
		uint8_t kind;

		runs[i].addr = vfmig__cur_u64(&c);
		runs[i].npages = vfmig__cur_u32(&c);
		kind = vfmig__cur_u8(&c);
		if (c.bad)
			break;
		bytes = (uint64_t)runs[i].npages * ps;
		if (runs[i].npages == 0 || kind > 1 || runs[i].addr % ps ||
		    runs[i].addr > UINT64_MAX - bytes) {
			vfmig__err(err, errlen,
				   "%s run %u: addr 0x%" PRIx64 ", %u pages, kind %u invalid",
				   what, i, runs[i].addr, runs[i].npages, kind);
			return -EBADMSG;
		}
		runs[i].zero = kind == 1;
		if (!runs[i].zero) {
			if (bytes > vfmig__cur_left(&c)) {
				c.bad = true;
				break;
			}
			runs[i].data = vfmig__cur_take(&c, (size_t)bytes);
			data_pages += runs[i].npages;
		}
	}
	if (live && !c.bad && vfmig__cur_left(&c) != data_pages * 4) {
		vfmig__err(err, errlen, "RAM_PAGES_LIVE page checksum table has %zu bytes, %"
			   PRIu64 " data pages need %" PRIu64, vfmig__cur_left(&c), data_pages,
			   data_pages * 4);
		return -EBADMSG;
	}
	if (live)
		vfmig__cur_take(&c, vfmig__cur_left(&c));
	return finish(&c, what, err, errlen);
}

static int dec_ram_pages(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
			 char *err, size_t errlen)
{
	return dec_ram_common(p, len, d, err, errlen, false);
}

static int dec_ram_pages_live(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
			      char *err, size_t errlen)
{
	return dec_ram_common(p, len, d, err, errlen, true);
}



static int dec_switchover(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
		     char *err, size_t errlen)
{
	(void)p;
	(void)d;
	if (len) {
		vfmig__err(err, errlen, "SWITCHOVER payload must be empty, has %u bytes", len);
		return -EBADMSG;
	}
	return 0;
}

static int dec_end(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
		   char *err, size_t errlen)
{
	struct vfmig__cur c;

	vfmig__cur_init(&c, p, len);
	d->u.end.records = vfmig__cur_u32(&c);
	return finish(&c, "END", err, errlen);
}

/* ---- one-line summaries ---- */

static void pr_stream_info(FILE *f, const struct vfmig_stream_decoded *d)
{
	uint16_t i;

	for (i = 0; i < d->u.info.count; i++)
		fprintf(f, "%s%.*s=\"%.*s\"", i ? ", " : "", d->u.info.kv[i].key.len,
			d->u.info.kv[i].key.p, d->u.info.kv[i].value.len, d->u.info.kv[i].value.p);
	fputc('\n', f);
}

static void pr_device_list(FILE *f, const struct vfmig_stream_decoded *d)
{
	uint16_t i;

	fprintf(f, "%u devices", d->u.device_list.count);
	for (i = 0; i < d->u.device_list.count; i++) {
		const struct vfmig_stream_device_view *v = &d->u.device_list.dev[i];

		fprintf(f, "\n      [%u] id=%.*s type=%.*s interface=%.*s instance=%u type-version=%u",
			i, v->id.len, v->id.p, v->type.len, v->type.p, v->interface.len,
			v->interface.p, v->instance, v->type_version);
	}
	fputc('\n', f);
}

static void pr_device_begin(FILE *f, const struct vfmig_stream_decoded *d)
{
	static const char *const phases[] = { "?", "setup", "precopy", "final" };

	fprintf(f, "device %u phase %s", d->u.device_begin.dev,
		phases[d->u.device_begin.phase <= VFMIG_PHASE_FINAL ? d->u.device_begin.phase : 0]);
	fputc('\n', f);
}

static void pr_device_data(FILE *f, const struct vfmig_stream_decoded *d)
{
	fprintf(f, "device %u, %u bytes of device data\n", d->u.device_data.dev,
		d->u.device_data.len);
}

static void pr_device_end(FILE *f, const struct vfmig_stream_decoded *d)
{
	fprintf(f, "device %u\n", d->u.device_end.dev);
}

static void pr_type_state(FILE *f, const struct vfmig_stream_decoded *d)
{
	fprintf(f, "device %u, %u bytes of state\n", d->u.type_state.dev, d->u.type_state.len);
	vfmig_fields_print(f, "      ", d->u.type_state.state, d->u.type_state.len, NULL, 0);
}

static void pr_vcpu_state(FILE *f, const struct vfmig_stream_decoded *d)
{
	fprintf(f, "vCPU %u, %u bytes of state\n", d->u.vcpu_state.vcpu, d->u.vcpu_state.len);
	vfmig_fields_print(f, "      ", d->u.vcpu_state.state, d->u.vcpu_state.len, NULL, 0);
}

static void pr_ram_runs(FILE *f, const struct vfmig_stream_decoded *d, const char *end)
{
	uint64_t pages = 0, zero = 0;
	uint32_t i;

	for (i = 0; i < d->u.ram_pages.nruns; i++) {
		pages += d->u.ram_pages.runs[i].npages;
		if (d->u.ram_pages.runs[i].zero)
			zero += d->u.ram_pages.runs[i].npages;
	}
	fprintf(f, "block %.*s page-size %u, %u runs, %" PRIu64 " pages (%" PRIu64 " zero)%s",
		d->u.ram_pages.block.len, d->u.ram_pages.block.p, d->u.ram_pages.page_size,
		d->u.ram_pages.nruns, pages, zero, end);
}

static void pr_ram_pages(FILE *f, const struct vfmig_stream_decoded *d)
{
	pr_ram_runs(f, d, "\n");
}

static void pr_ram_pages_live(FILE *f, const struct vfmig_stream_decoded *d)
{
	pr_ram_runs(f, d, "");
	fprintf(f, ", %u torn\n", d->u.ram_pages.torn);
}

static void pr_switchover(FILE *f, const struct vfmig_stream_decoded *d)
{
	(void)d;
	fprintf(f, "the final stop-and-copy part follows\n");
}

static void pr_end(FILE *f, const struct vfmig_stream_decoded *d)
{
	fprintf(f, "%u records before END\n", d->u.end.records);
}

/* The catalogue table, generated from the X-list in stream.h. */
static const struct vfmig__rec_type rec_types[] = {
#define X(name, num, mu, low) [num] = { #name, mu, dec_##low, pr_##low },
	VFMIG_STREAM_RECORDS(X)
#undef X
};
#define NREC (sizeof(rec_types) / sizeof(rec_types[0]))

const struct vfmig__rec_type *vfmig__rec_type(uint16_t type)
{
	if (type >= NREC || !rec_types[type].name)
		return NULL;
	return &rec_types[type];
}

const char *vfmig_stream_type_name(uint16_t type)
{
	const struct vfmig__rec_type *t = vfmig__rec_type(type);

	return t ? t->name : NULL;
}

int vfmig_stream_decode(uint16_t type, const uint8_t *payload, uint32_t len,
			struct vfmig_stream_decoded *d, char *err, size_t errlen)
{
	const struct vfmig__rec_type *t = vfmig__rec_type(type);
	int rc;

	memset(d, 0, sizeof(*d));
	if (!t) {
		vfmig__err(err, errlen, "unknown record type %u", type);
		return -ENOENT;
	}
	rc = t->decode(payload, len, d, err, errlen);
	if (rc < 0)
		vfmig_stream_decoded_clear(type, d);
	return rc;
}

void vfmig_stream_decoded_clear(uint16_t type, struct vfmig_stream_decoded *d)
{
	switch (type) {
	case VFMIG_REC_STREAM_INFO:
		free(d->u.info.kv);
		break;
	case VFMIG_REC_DEVICE_LIST:
		free(d->u.device_list.dev);
		break;
	case VFMIG_REC_RAM_PAGES:
	case VFMIG_REC_RAM_PAGES_LIVE:
		free(d->u.ram_pages.runs);
		break;
	default:
		break;
	}
	memset(d, 0, sizeof(*d));
}
