/* SPDX-License-Identifier: MIT */
/* The migration timeline as an SVG file; see report_svg.h. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report_svg.h"
#include "units.h"

/* Canvas and plot area, in SVG user units (pixels). */
#define CANVAS_W 960
#define CANVAS_H 540
#define PLOT_L 100
#define PLOT_R 860
#define PLOT_T 110
#define PLOT_B 420
#define MAX_SERIES 9 /* RAM and 8 devices (VFMIG_MIG_TRACK_DEVS) */
#define MAX_ENTRIES 1024

static const char *const colors[MAX_SERIES] = {
	"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2",
	"#edc948", "#ff9da7", "#9c755f", "#bab0ac",
};

struct entry {
	bool stop_copy;
	int round;
	double start_ms, end_ms;
	double bytes[MAX_SERIES]; /* [0] RAM, [1..] devices */
	double total;
	double rate;         /* dirty pages/s */
	double expected_ms;  /* < 0: none */
};

struct chart {
	size_t n, nser;
	struct entry *e;
	const char *series[MAX_SERIES];
	double ymax, ratemax;
};

/* ---- JSON access, forgiving: a missing or odd value reads as dflt ---- */

static double num(struct json_object *o, const char *key, double dflt)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_int) ||
	      json_object_is_type(v, json_type_double)))
		return dflt;
	/* Finite and bounded, so that sums and scales stay finite. */
	double d = json_object_get_double(v);
	if (!isfinite(d))
		return dflt;
	return d > 1e18 ? 1e18 : d < -1e18 ? -1e18 : d;
}

static double array_num(struct json_object *a, size_t k)
{
	struct json_object *v = json_object_array_get_idx(a, k);
	double d = v ? json_object_get_double(v) : 0;

	return isfinite(d) && d < 1e18 ? d : 0;
}

/* A count for the text: the report's, within what an int holds (a
 * double out of range is no int). */
static int count(struct json_object *o, const char *key)
{
	double v = num(o, key, 0);

	return v > -1e9 && v < 1e9 ? (int)v : 0;
}

static const char *str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* ---- text ---- */

static void xml_escape(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '&': fputs("&amp;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&apos;", out); break;
		default:
			/* Control characters are not allowed in XML 1.0. */
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				fputc(*s, out);
		}
	}
}

/* ---- the data ---- */

static void load(struct chart *c, struct json_object *rep)
{
	struct json_object *tl = NULL, *ids = NULL;

	memset(c, 0, sizeof(*c));
	c->series[c->nser++] = "RAM";
	if (json_object_object_get_ex(rep, "timeline_devices", &ids) &&
	    json_object_is_type(ids, json_type_array))
		for (size_t i = 0; i < json_object_array_length(ids) &&
				   c->nser < MAX_SERIES;
		     i++) {
			const char *id = json_object_get_string(
				json_object_array_get_idx(ids, i));
			c->series[c->nser++] = id ? id : "?";
		}
	if (!json_object_object_get_ex(rep, "timeline", &tl) ||
	    !json_object_is_type(tl, json_type_array))
		return;
	size_t n = json_object_array_length(tl);
	if (n > MAX_ENTRIES)
		n = MAX_ENTRIES;
	c->e = calloc(n ? n : 1, sizeof(*c->e));
	if (!c->e)
		return;
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(tl, i), *d;
		struct entry *e = &c->e[c->n];
		const char *phase = str(o, "phase");

		if (!o || !json_object_is_type(o, json_type_object))
			continue;
		e->stop_copy = phase && !strcmp(phase, "stop-copy");
		e->round = count(o, "round");
		e->start_ms = num(o, "start_ms", 0);
		e->end_ms = num(o, "end_ms", e->start_ms);
		e->bytes[0] = num(o, "ram_bytes", 0);
		if (json_object_object_get_ex(o, "device_bytes", &d) &&
		    json_object_is_type(d, json_type_array))
			for (size_t k = 0; k + 1 < c->nser &&
					   k < json_object_array_length(d);
			     k++)
				e->bytes[k + 1] = array_num(d, k);
		for (size_t k = 0; k < c->nser; k++) {
			if (e->bytes[k] < 0)
				e->bytes[k] = 0;
			e->total += e->bytes[k];
		}
		e->rate = num(o, "dirty_pages_rate", 0);
		e->expected_ms = num(o, "expected_downtime_ms", -1);
		if (e->total > c->ymax)
			c->ymax = e->total;
		if (!e->stop_copy && e->rate > c->ratemax)
			c->ratemax = e->rate;
		c->n++;
	}
}

/* ---- drawing ---- */

static double slot_w(const struct chart *c)
{
	return (double)(PLOT_R - PLOT_L) / (double)(c->n ? c->n : 1);
}

static double y_bytes(const struct chart *c, double b)
{
	return PLOT_B - b / c->ymax * (PLOT_B - PLOT_T);
}

static double y_rate(const struct chart *c, double r)
{
	return PLOT_B - r / c->ratemax * (PLOT_B - PLOT_T);
}

static void draw_header(FILE *out, const struct chart *c,
			struct json_object *rep)
{
	struct json_object *bytes = NULL;
	const char *error = str(rep, "error");
	char ram[32], dev[32];
	double dt = num(rep, "downtime_ms", -1);

	json_object_object_get_ex(rep, "bytes", &bytes);
	cli_human_bytes(ram, sizeof(ram), num(bytes, "ram", 0));
	cli_human_bytes(dev, sizeof(dev), num(bytes, "device", 0));
	fprintf(out, "<text class=\"title\" x=\"%d\" y=\"30\" "
		     "font-size=\"18\" font-weight=\"bold\">vfmig migration: ",
		PLOT_L);
	if (error) {
		fputs("failed: ", out);
		xml_escape(out, error);
	} else {
		fputs("completed", out);
	}
	fputs("</text>\n", out);
	fprintf(out, "<text class=\"summary\" x=\"%d\" y=\"52\" "
		     "font-size=\"13\">total %.1f ms, ",
		PLOT_L, num(rep, "total_ms", 0));
	if (dt >= 0)
		fprintf(out, "downtime %.1f ms, ", dt);
	fprintf(out, "%d rounds, RAM %s, devices %s, %.0f Mbit/s</text>\n",
		count(rep, "rounds"), ram, dev,
		num(rep, "throughput_mbps", 0));
	/* The legend: one entry per series, and the dirty-rate line. */
	double x = PLOT_L;
	for (size_t k = 0; k < c->nser; k++) {
		fprintf(out, "<g class=\"legend\" data-series=\"");
		xml_escape(out, c->series[k]);
		fprintf(out, "\"><rect x=\"%.1f\" y=\"66\" width=\"12\" "
			     "height=\"12\" fill=\"%s\"/><text x=\"%.1f\" "
			     "y=\"77\" font-size=\"12\">",
			x, colors[k], x + 16);
		xml_escape(out, c->series[k]);
		fputs("</text></g>\n", out);
		x += 24 + 8 * (double)strlen(c->series[k]);
	}
	fprintf(out, "<g class=\"legend\" data-series=\"dirty-rate\"><line "
		     "x1=\"%.1f\" y1=\"72\" x2=\"%.1f\" y2=\"72\" "
		     "stroke=\"#333\" stroke-width=\"2\"/><text x=\"%.1f\" "
		     "y=\"77\" font-size=\"12\">dirty pages/s</text></g>\n",
		x, x + 16, x + 20);
}

static void draw_axes(FILE *out, const struct chart *c)
{
	char b[32];

	fprintf(out, "<g class=\"axes\" font-size=\"11\">\n"
		     "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
		     "stroke=\"#000\"/>\n"
		     "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
		     "stroke=\"#000\"/>\n",
		PLOT_L, PLOT_B, PLOT_R, PLOT_B, PLOT_L, PLOT_T, PLOT_L,
		PLOT_B);
	for (int k = 0; k <= 4; k++) {
		double v = c->ymax * k / 4, y = y_bytes(c, v);
		cli_human_bytes(b, sizeof(b), v);
		fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" "
			     "y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" "
			     "y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
			PLOT_L, y, PLOT_R, y, PLOT_L - 6, y + 4, b);
		fprintf(out, "<text x=\"%d\" y=\"%.1f\">%.0f</text>\n",
			PLOT_R + 6, y_rate(c, c->ratemax * k / 4) + 4,
			c->ratemax * k / 4);
	}
	fprintf(out, "<text x=\"20\" y=\"%d\" transform=\"rotate(-90 20 %d)\" "
		     "text-anchor=\"middle\">bytes sent in the round</text>\n",
		(PLOT_T + PLOT_B) / 2, (PLOT_T + PLOT_B) / 2);
	fprintf(out, "<text x=\"%d\" y=\"%d\" transform=\"rotate(90 %d %d)\" "
		     "text-anchor=\"middle\">dirty pages/s</text>\n</g>\n",
		CANVAS_W - 20, (PLOT_T + PLOT_B) / 2, CANVAS_W - 20,
		(PLOT_T + PLOT_B) / 2);
}

static void draw_entry(FILE *out, const struct chart *c, size_t i)
{
	const struct entry *e = &c->e[i];
	double sw = slot_w(c), x = PLOT_L + sw * (double)i + sw * 0.15;
	double bw = sw * 0.7, base = PLOT_B;
	char b[32];

	fprintf(out, "<g class=\"round\" data-round=\"%d\" data-phase=\"%s\">\n"
		     "<title>%s %d: %.1f..%.1f ms",
		e->round, e->stop_copy ? "stop-copy" : "precopy",
		e->stop_copy ? "stop-copy" : "round", e->round, e->start_ms,
		e->end_ms);
	for (size_t k = 0; k < c->nser; k++) {
		cli_human_bytes(b, sizeof(b), e->bytes[k]);
		fputs(", ", out);
		xml_escape(out, c->series[k]);
		fprintf(out, " %s", b);
	}
	fputs("</title>\n", out);
	for (size_t k = 0; k < c->nser; k++) {
		double h = e->bytes[k] / c->ymax * (PLOT_B - PLOT_T);
		fputs("<rect class=\"bar\" data-series=\"", out);
		xml_escape(out, c->series[k]);
		fprintf(out, "\" data-bytes=\"%.0f\" x=\"%.1f\" y=\"%.1f\" "
			     "width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
			e->bytes[k], x, base - h, bw, h, colors[k]);
		base -= h;
	}
	cli_human_bytes(b, sizeof(b), e->total);
	fprintf(out, "<text class=\"bar-label\" x=\"%.1f\" y=\"%.1f\" "
		     "font-size=\"10\" text-anchor=\"middle\">%s</text>\n",
		x + bw / 2, base - 4, b);
	fprintf(out, "<text class=\"round-label\" x=\"%.1f\" y=\"%d\" "
		     "font-size=\"10\" text-anchor=\"middle\">",
		x + bw / 2, PLOT_B + 14);
	if (e->stop_copy)
		fputs("stop-copy", out);
	else
		fprintf(out, "round %d", e->round);
	fprintf(out, "</text>\n<text class=\"round-time\" x=\"%.1f\" y=\"%d\" "
		     "font-size=\"10\" text-anchor=\"middle\">%.1f ms</text>\n",
		x + bw / 2, PLOT_B + 27, e->end_ms - e->start_ms);
	if (e->expected_ms >= 0)
		fprintf(out, "<text class=\"expected-downtime\" x=\"%.1f\" "
			     "y=\"%d\" font-size=\"9\" text-anchor=\"middle\">"
			     "exp. %.1f ms</text>\n",
			x + bw / 2, PLOT_B + 40, e->expected_ms);
	fputs("</g>\n", out);
}

static void draw_dirty_rate(FILE *out, const struct chart *c)
{
	double sw = slot_w(c);

	fputs("<g class=\"dirty-rate\">\n<polyline fill=\"none\" "
	      "stroke=\"#333\" stroke-width=\"2\" points=\"", out);
	for (size_t i = 0; i < c->n; i++)
		if (!c->e[i].stop_copy)
			fprintf(out, "%.1f,%.1f ",
				PLOT_L + sw * ((double)i + 0.5),
				y_rate(c, c->e[i].rate));
	fputs("\"/>\n", out);
	for (size_t i = 0; i < c->n; i++)
		if (!c->e[i].stop_copy)
			fprintf(out, "<circle class=\"dirty-rate-point\" "
				     "data-round=\"%d\" cx=\"%.1f\" cy=\"%.1f\" "
				     "r=\"3\" fill=\"#333\"><title>round %d: "
				     "%.0f dirty pages/s</title></circle>\n",
				c->e[i].round, PLOT_L + sw * ((double)i + 0.5),
				y_rate(c, c->e[i].rate), c->e[i].round,
				c->e[i].rate);
	fputs("</g>\n", out);
}

/* The switchover line before the stop-copy bar, and the downtime band
 * over it. */
static void draw_switchover(FILE *out, const struct chart *c,
			    struct json_object *rep)
{
	double sw = slot_w(c), dt = num(rep, "downtime_ms", -1);
	size_t i;

	for (i = 0; i < c->n && !c->e[i].stop_copy; i++)
		;
	if (i == c->n)
		return;
	double x = PLOT_L + sw * (double)i;
	double at = num(rep, "switchover_ms", c->e[i].start_ms);
	if (dt >= 0)
		fprintf(out, "<g class=\"downtime\"><rect x=\"%.1f\" y=\"%d\" "
			     "width=\"%.1f\" height=\"%d\" fill=\"#e15759\" "
			     "fill-opacity=\"0.12\"/><text "
			     "class=\"downtime-label\" x=\"%.1f\" y=\"%d\" "
			     "font-size=\"12\" text-anchor=\"middle\" "
			     "fill=\"#b00\">downtime %.1f ms</text></g>\n",
			x, PLOT_T, sw, PLOT_B - PLOT_T, x + sw / 2, PLOT_T + 14,
			dt);
	fprintf(out, "<g class=\"switchover\"><line x1=\"%.1f\" y1=\"%d\" "
		     "x2=\"%.1f\" y2=\"%d\" stroke=\"#b00\" stroke-width=\"2\" "
		     "stroke-dasharray=\"6,4\"/><text "
		     "class=\"switchover-label\" x=\"%.1f\" y=\"%d\" "
		     "font-size=\"12\" text-anchor=\"middle\" fill=\"#b00\">"
		     "switchover at %.1f ms</text></g>\n",
		x, PLOT_T - 6, x, PLOT_B, x, PLOT_T - 10, at);
}

void report_svg_render(FILE *out, struct json_object *rep)
{
	struct chart c;

	load(&c, rep);
	if (c.ymax <= 0)
		c.ymax = 1;
	if (c.ratemax <= 0)
		c.ratemax = 1;
	c.ymax *= 1.1; /* room for the labels above the highest bar */
	fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		     "height=\"%d\" viewBox=\"0 0 %d %d\" "
		     "font-family=\"sans-serif\">\n"
		     "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
		CANVAS_W, CANVAS_H, CANVAS_W, CANVAS_H);
	draw_header(out, &c, rep);
	draw_axes(out, &c);
	draw_switchover(out, &c, rep);
	for (size_t i = 0; i < c.n; i++)
		draw_entry(out, &c, i);
	draw_dirty_rate(out, &c);
	if (!c.n)
		fprintf(out, "<text class=\"empty\" x=\"%d\" y=\"%d\" "
			     "font-size=\"14\">no rounds: the migration ended "
			     "before it sent anything</text>\n",
			PLOT_L + 20, (PLOT_T + PLOT_B) / 2);
	fputs("</svg>\n", out);
	free(c.e);
}

/* ---- the file ---- */

int report_svg_open(struct report_svg *r, const char *path, char *err,
		    size_t errlen)
{
	size_t n = strlen(path);
	int fd;

	memset(r, 0, sizeof(*r));
	if (n < 5 || strcmp(path + n - 4, ".svg")) {
		snprintf(err, errlen, "--report %s: the name must end in .svg "
			 "(the report is an SVG drawing)", path);
		return -1;
	}
	if ((size_t)snprintf(r->tmp, sizeof(r->tmp), "%s.tmp.%ld", path,
			     (long)getpid()) >= sizeof(r->tmp)) {
		snprintf(err, errlen, "--report: path too long");
		return -1;
	}
	fd = open(r->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || !(r->f = fdopen(fd, "w"))) {
		snprintf(err, errlen, "--report %s: cannot write %s: %s", path,
			 r->tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(r->tmp);
		}
		return -1;
	}
	r->path = path;
	return 0;
}

void report_svg_abort(struct report_svg *r)
{
	if (!r->f)
		return;
	fclose(r->f);
	r->f = NULL;
	unlink(r->tmp);
}

int report_svg_commit(struct report_svg *r, struct json_object *rep,
		      char *err, size_t errlen)
{
	int e = 0;

	report_svg_render(r->f, rep);
	if (fflush(r->f) != 0 || ferror(r->f) || fsync(fileno(r->f)) < 0)
		e = errno ? errno : EIO;
	if (fclose(r->f) != 0 && !e)
		e = errno;
	r->f = NULL;
	if (!e && rename(r->tmp, r->path) < 0)
		e = errno;
	if (e) {
		unlink(r->tmp);
		snprintf(err, errlen, "--report %s: writing it failed: %s",
			 r->path, strerror(e));
		return -1;
	}
	return 0;
}
