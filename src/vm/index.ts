/**
 * `vfio/vm`: run commands as root in the vfio test-bed guest, a QEMU VM with
 * Linux 6.12, VFIO, iommufd, vfio-pci, the mtty/mdpy/mbochs mdev samples and
 * QEMU's edu device behind an emulated Intel IOMMU. The project is shared
 * read-write at its own path; the rest of the host root is a copy-on-write
 * snapshot. The `vfio-vm` command is this API on the command line.
 *
 * @packageDocumentation
 * @module vfio/vm
 */
export { runInVm, type RunInVmOptions, type VmRunResult, type VmOutput } from './run.js';
export { VmError } from './common.js';
export { resolveKernel, type Kernel } from './kernel.js';
