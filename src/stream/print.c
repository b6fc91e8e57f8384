/* SPDX-License-Identifier: MIT */
/* Human-readable stream printer and verifier (for `vfmig inspect`). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "internal.h"

static int print_fail(FILE *out, struct vfmig_stream_reader *r, int rc, char *err,
		      size_t errlen)
{
	fprintf(out, "ERROR: %s\n", vfmig_stream_reader_error(r));
	vfmig__err(err, errlen, "%s", vfmig_stream_reader_error(r));
	vfmig_stream_reader_free(r);
	return rc;
}

int vfmig_stream_print(struct vfmig_io *io, FILE *out, char *err, size_t errlen)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig__frame fr;
	const char *name;
	char oerr[320];
	uint8_t extra[64];
	ssize_t got;
	uint64_t trailing = 0;
	int rc;

	oerr[0] = 0;
	rc = vfmig_stream_reader_open(&r, io, oerr, sizeof(oerr));
	if (rc < 0) {
		fprintf(out, "ERROR: %s\n", oerr);
		vfmig__err(err, errlen, "%s", oerr);
		return rc;
	}
	fprintf(out, "vfmig stream, format %u.%u, header %u bytes, checksum OK, "
		"record checksum %s\n", VFMIG_STREAM_MAJOR, vfmig_stream_reader_minor(r),
		VFMIG_STREAM_HEADER_SIZE, vfmig_stream_csum_name(vfmig_stream_reader_csum(r)));
	while (!vfmig__reader_done(r)) {
		rc = vfmig__reader_frame(r, &fr);
		if (rc < 0)
			return print_fail(out, r, rc, err, errlen);
		name = vfmig_stream_type_name(fr.type);
		fprintf(out, "@%-10" PRIu64 " %-12s (type %u) flags 0x%04x%s length %" PRIu32
			" checksum %s\n", fr.offset, name ? name : "UNKNOWN", fr.type, fr.flags,
			fr.flags & VFMIG_STREAM_F_MUST_UNDERSTAND ? " (must-understand)" : "",
			fr.length, fr.csum_stored == fr.csum_computed ? "OK" : "BAD");
		rc = vfmig__reader_accept(r, &fr, &rec);
		if (rc < 0)
			return print_fail(out, r, rc, err, errlen);
		if (rc == 0) {
			fprintf(out, "    skipped: unknown optional record\n");
			continue;
		}
		fprintf(out, "    ");
		vfmig__rec_type(rec.type)->print(out, &rec.d);
	}
	while ((got = vfmig_io_read(io, extra, sizeof(extra))) > 0)
		trailing += (uint64_t)got;
	if (got < 0 || trailing) {
		rc = got < 0 ? (int)got : -EBADMSG;
		fprintf(out, "ERROR: %" PRIu64 " bytes after END at offset %" PRIu64 "%s%s\n",
			trailing, vfmig_stream_reader_offset(r), got < 0 ? ", then " : "",
			got < 0 ? strerror((int)-got) : "");
		vfmig__err(err, errlen, "%" PRIu64 " bytes after END at offset %" PRIu64,
			   trailing, vfmig_stream_reader_offset(r));
		vfmig_stream_reader_free(r);
		return rc;
	}
	fprintf(out, "OK: %" PRIu64 " bytes, %" PRIu32 " unknown optional records skipped\n",
		vfmig_stream_reader_offset(r), vfmig_stream_reader_skipped(r));
	vfmig_stream_reader_free(r);
	return 0;
}
