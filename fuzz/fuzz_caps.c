/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the VERSION payload and its capabilities JSON. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfw_caps caps;
	uint16_t major, minor;
	char err[256];

	if (vfw_version_parse(data, size, &major, &minor, &caps, err,
			      sizeof(err)) == 0) {
		/* Whatever parsed must format and parse back the same. */
		size_t len;
		uint8_t *p = vfw_version_build(major, minor, &caps,
					       caps.has_migration, &len);
		if (p) {
			struct vfw_caps again;
			if (vfw_version_parse(p, len, &major, &minor, &again,
					      err, sizeof(err)) != 0 ||
			    again.max_msg_fds != caps.max_msg_fds ||
			    again.max_data_xfer_size !=
				    caps.max_data_xfer_size ||
			    again.max_dma_maps != caps.max_dma_maps ||
			    again.pgsizes != caps.pgsizes ||
			    again.mig_info_version != caps.mig_info_version ||
			    again.data_channel_version !=
				    caps.data_channel_version)
				abort();
			free(p);
		}
	}
	return 0;
}
