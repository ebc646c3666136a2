/**
 * Opens an mtty, takes it into RESUMING and exits without closing anything, so
 * the kernel closes the fds and mtty keeps the RESUMING state without its
 * resume file (the trap of kernel-6.12-facts' mtty close path).
 *
 *   node --import tsx mig-resuming.ts <uuid> <group|cdev>
 * Prints "resuming" before it exits with status 3.
 */
import { openDevice } from '../../../src/vfio/open.js';

const [uuid, backend] = process.argv.slice(2) as [string, 'group' | 'cdev'];
const o = openDevice(uuid, { backend });
o.device.migration!.setState('RESUMING');
process.stdout.write(`${o.device.migration!.state === 'RESUMING' ? 'resuming' : 'not resuming'}\n`);
process.exit(3);
