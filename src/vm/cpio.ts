/**
 * A minimal writer for the "newc" cpio format that the kernel unpacks as an
 * initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
 * Several archives may be concatenated; the kernel unpacks them in order.
 */

export type CpioEntry =
  | { type: 'dir'; name: string; mode?: number }
  | { type: 'file'; name: string; data: Uint8Array | string; mode?: number }
  | { type: 'symlink'; name: string; target: string }
  | { type: 'chardev'; name: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(len: number): number {
  return (4 - (len % 4)) % 4;
}

/** Builds one newc archive (with its TRAILER!!!) from the entries, in order. */
export function buildCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const push = (name: string, mode: number, body: Buffer, rdev: [number, number] = [0, 0]): void => {
    if (name.length === 0 || name.startsWith('/')) throw new Error(`cpio names are relative and non-empty: "${name}"`);
    const nameBuf = Buffer.from(name + '\0', 'utf8');
    const header =
      '070701' +
      hex8(ino++) +
      hex8(mode) +
      hex8(0) + // uid
      hex8(0) + // gid
      hex8(1) + // nlink
      hex8(0) + // mtime: fixed, so identical inputs give identical archives
      hex8(body.length) +
      hex8(0) + hex8(0) + // dev major/minor
      hex8(rdev[0]) + hex8(rdev[1]) + // rdev major/minor
      hex8(nameBuf.length) +
      hex8(0); // check
    parts.push(Buffer.from(header, 'ascii'), nameBuf, Buffer.alloc(pad4(110 + nameBuf.length)));
    parts.push(body, Buffer.alloc(pad4(body.length)));
  };
  for (const e of entries) {
    if (e.type === 'dir') push(e.name, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0));
    else if (e.type === 'file') push(e.name, S_IFREG | (e.mode ?? 0o644), Buffer.from(e.data));
    else if (e.type === 'symlink') push(e.name, S_IFLNK | 0o777, Buffer.from(e.target, 'utf8'));
    else push(e.name, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), [e.major, e.minor]);
  }
  ino = 0;
  push('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}
