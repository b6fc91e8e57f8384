/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the MSI-X capability of a device's config space as
 * `vfmig vmm --kvm` reads it (kvm_pci_parse_msix, src/kvm/kvm_pci.c). The
 * first six bytes give the BAR sizes (0: no BAR, else 1 << (byte & 31)),
 * the rest is config space (up to 256 bytes, zeros after). A table the
 * parser accepts must lie inside a BAR that exists and hold 1 to
 * KVM_PCI_MAX_VEC vectors; any other answer is "none" or "does not fit".
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm_pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t bars[KVM_PCI_NBARS] = { 0 };
	uint32_t bar, off, nvec;
	uint8_t *cfg;

	if (size < KVM_PCI_NBARS)
		return 0;
	for (unsigned int b = 0; b < KVM_PCI_NBARS; b++)
		bars[b] = data[b] ? 1ull << (data[b] & 31) : 0;
	data += KVM_PCI_NBARS;
	size -= KVM_PCI_NBARS;
	/* Exactly 256 bytes on the heap, so a read past config space is an
	 * ASan report. */
	cfg = calloc(1, 256);
	if (!cfg)
		abort();
	memcpy(cfg, data, size < 256 ? size : 256);
	int r = kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec);
	if (r == 0) {
		if (bar >= KVM_PCI_NBARS || !bars[bar] || nvec < 1 ||
		    nvec > KVM_PCI_MAX_VEC || off % 8 ||
		    (uint64_t)off + 16ull * nvec > bars[bar])
			abort();
	} else if (r != -ENOENT && r != -ERANGE) {
		abort();
	}
	free(cfg);
	return 0;
}
