/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: one line on the VMM's control socket, as a management
 * client (or anyone who can reach the socket) sends it. A parse either
 * fails with a message or yields a request whose parts have the types
 * the command handlers rely on.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/control_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfmig_control_request rq;
	char err[400] = "";

	if (vfmig_control_parse_request((const char *)data, size, &rq, err,
					sizeof(err)) == 0) {
		if (!rq.execute || !json_object_is_type(rq.req, json_type_object))
			abort();
		if (rq.args && !json_object_is_type(rq.args, json_type_object))
			abort();
		/* What the reply would echo must serialise. */
		if (rq.id && !json_object_to_json_string(rq.id))
			abort();
	} else if (!err[0]) {
		abort(); /* every refusal names its reason */
	}
	vfmig_control_request_release(&rq);
	return 0;
}
