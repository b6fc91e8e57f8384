/* SPDX-License-Identifier: MIT */
/* The guest image built from guest/ (kvm_abi.h), embedded in vfmig. */
#ifndef VFMIG_KVM_IMAGE_H
#define VFMIG_KVM_IMAGE_H

#include <stddef.h>

extern const unsigned char vfmig_kvm_guest_image[];
extern const size_t vfmig_kvm_guest_image_size;

#endif
