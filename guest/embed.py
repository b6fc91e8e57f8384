#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the flat guest image as a C array for the vfmig binary."""
import sys

data = open(sys.argv[1], 'rb').read()
with open(sys.argv[2], 'w') as out:
    out.write('/* Generated from the guest image by guest/embed.py. */\n')
    out.write('#include <stddef.h>\n')
    out.write('#include "kvm/kvm_image.h"\n')
    out.write('const unsigned char vfmig_kvm_guest_image[] = {\n')
    for i in range(0, len(data), 12):
        out.write('  ' + ', '.join('0x%02x' % b for b in data[i:i + 12]) + ',\n')
    out.write('};\n')
    out.write('const size_t vfmig_kvm_guest_image_size = %d;\n' % len(data))
