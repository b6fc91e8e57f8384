/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the payload of a VCPU_STATE record (a --kvm VM's vCPU
 * state, docs/stream-format.md), as a destination reads it: the record
 * decoder, the "kvm-vcpu" field table's decoder and the checks made
 * before anything reaches KVM (src/kvm/kvm_vcpu.c). What the checks
 * accept must encode and decode back to the same state and pass them
 * again; a refusal must say why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm_vcpu.h"
#include "stream/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM (32ull << 20) /* the seeds' VM */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfmig_stream_decoded d;
	struct vfmig_kvm_vcpu_state *s, *t;
	char err[256];
	uint8_t *enc;
	size_t len;

	if (size > UINT32_MAX)
		return 0;
	if (vfmig_stream_decode(VFMIG_REC_VCPU_STATE, data, (uint32_t)size, &d, err,
				sizeof(err)) < 0)
		return 0;
	if (d.u.vcpu_state.vcpu >= VFMIG_STREAM_MAX_VCPUS ||
	    d.u.vcpu_state.len != size - 2)
		abort();
	s = calloc(1, sizeof(*s));
	t = calloc(1, sizeof(*t));
	if (!s || !t)
		abort();
	err[0] = 0;
	if (vfmig_fields_decode(&vfmig_kvm_vcpu_desc, d.u.vcpu_state.state,
				d.u.vcpu_state.len, s, err, sizeof(err)) < 0) {
		if (!err[0])
			abort();
		goto out;
	}
	err[0] = 0;
	if (kvm_vcpu_state_check(s, RAM, err, sizeof(err)) < 0) {
		if (!err[0])
			abort();
		goto out;
	}
	if (vfmig_fields_encode(&vfmig_kvm_vcpu_desc, s, &enc, &len, NULL, 0) < 0)
		abort();
	if (vfmig_fields_decode(&vfmig_kvm_vcpu_desc, enc, len, t, NULL, 0) < 0 ||
	    memcmp(s, t, sizeof(*s)) ||
	    kvm_vcpu_state_check(t, RAM, err, sizeof(err)) < 0)
		abort();
	free(enc);
out:
	vfmig_stream_decoded_clear(VFMIG_REC_VCPU_STATE, &d);
	free(s);
	free(t);
	return 0;
}
