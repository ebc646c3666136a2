import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VmError, packageRoot } from '../../src/vm/common.js';
import { isBzImage, kernelKey, readyKernel } from '../../src/vm/kernel.js';
import { kernelCmdline, qemuArgs, type MachineSpec } from '../../src/vm/qemu.js';
import { judgeReport } from '../../scripts/test.js';
import { ensureRequirements } from '../../src/vm/deps.js';
import { guestEnv, parseArgs } from '../../src/cli/vfio-vm.js';
import { runInVm } from '../../src/vm/run.js';

const spec: MachineSpec = {
  accel: 'tcg',
  bzImage: '/k/bzImage',
  initrd: '/k/initrd',
  memoryMiB: 3072,
  smp: 2,
  share: '/work/repo',
  sockDir: '/tmp/s',
  append: [],
  nvmeImage: '/tmp/w/nvme.img',
};

describe('qemuArgs', () => {
  it('builds a q35 TCG guest with VT-d (intremap) before edu, and both 9p shares', () => {
    const a = qemuArgs(spec);
    const j = a.join(' ');
    expect(j).toContain('-machine q35 -accel tcg,thread=multi -cpu max -smp 2 -m 3072M');
    expect(a.indexOf('intel-iommu,intremap=on,caching-mode=on')).toBeLessThan(a.indexOf('edu'));
    expect(j).toContain('local,id=hostroot,path=/,security_model=none,multidevs=remap,readonly=on');
    expect(j).toContain('local,id=share,path=/work/repo,security_model=none,multidevs=remap -device virtio-9p-pci,fsdev=share,mount_tag=share');
    for (const c of ['stdout', 'stderr', 'status']) expect(j).toContain(`virtserialport,bus=vser0.0,chardev=${c},name=vfio.${c}`);
    expect(j).toContain('-no-reboot');
    // The NVMe controller: a PCIe function behind a root port, after the vIOMMU, on the run's image.
    expect(j).toContain('-device pcie-root-port,id=rp0,chassis=1,slot=1 -drive file=/tmp/w/nvme.img,if=none,id=nvm0,format=raw -device nvme,serial=vfio-bed-nvme0,drive=nvm0,bus=rp0');
    expect(a.indexOf('intel-iommu,intremap=on,caching-mode=on')).toBeLessThan(a.indexOf('pcie-root-port,id=rp0,chassis=1,slot=1'));
    expect(qemuArgs({ ...spec, nvmeImage: null }).join(' ')).not.toContain('nvme');
  });

  it('uses a split irqchip and the host CPU under KVM (intremap needs it)', () => {
    const j = qemuArgs({ ...spec, accel: 'kvm' }).join(' ');
    expect(j).toContain('-machine q35,kernel-irqchip=split -accel kvm -cpu host');
  });

  it('refuses share paths that would break the -fsdev option list', () => {
    expect(() => qemuArgs({ ...spec, share: '/a,b' })).toThrow(VmError);
  });

  it('turns oopses into panics and panics into a stopped VM', () => {
    const c = kernelCmdline(['x=1'], false);
    expect(c.split(' ')).toEqual(expect.arrayContaining(['console=ttyS0', 'intel_iommu=on', 'panic=-1', 'oops=panic', 'quiet', 'x=1']));
    expect(kernelCmdline([], true)).not.toContain('quiet');
  });
});

describe('vfio-vm argument parsing', () => {
  it('takes options up to the first word or --, and the rest verbatim', () => {
    expect(parseArgs(['-v', '-e', 'A=1', '--env', 'B=x=y', 'ls', '-la', '--', 'x'])).toMatchObject({
      verbose: true,
      env: { A: '1', B: 'x=y' },
      argv: ['ls', '-la', '--', 'x'],
    });
    expect(parseArgs(['--', '-v']).argv).toEqual(['-v']);
    expect(parseArgs(['-t', '30', 'true']).timeoutS).toBe(30);
  });

  it('rejects bad options with usage errors (exit 2)', () => {
    for (const bad of [['--nope'], ['-e', 'NOEQUALS'], ['-e', '1A=2'], ['-t', '-5'], ['-e']]) {
      let err: unknown;
      try {
        parseArgs(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad.join(' ')).toBeInstanceOf(VmError);
      expect((err as VmError).exitCode).toBe(2);
    }
  });

  it('gives the guest a writable HOME, forwards PATH and VFIO_* but not VFIO_VM_*', () => {
    const env = guestEnv({ PATH: '/p', VFIO_DEBUG: '1', VFIO_VM_KERNEL: '/k', SECRET: 's' }, { X: 'y' });
    expect(env).toMatchObject({ PATH: '/p', VFIO_DEBUG: '1', HOME: '/tmp/home', VFIO_VM_GUEST: '1', X: 'y' });
    expect(env).not.toHaveProperty('VFIO_VM_KERNEL');
    expect(env).not.toHaveProperty('SECRET');
  });
});

describe('kernel selection', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kern-test-'));

  it('recognises a bzImage by its boot header', () => {
    const img = Buffer.alloc(0x300);
    img.write('HdrS', 0x202, 'latin1');
    writeFileSync(join(dir, 'bz'), img);
    writeFileSync(join(dir, 'not'), Buffer.alloc(0x300));
    expect(isBzImage(join(dir, 'bz'))).toBe(true);
    expect(isBzImage(join(dir, 'not'))).toBe(false);
    expect(readyKernel({ VFIO_VM_KERNEL: join(dir, 'bz') })).toMatchObject({ bzImage: join(dir, 'bz'), modulesRoot: null });
  });

  it('names a missing or wrong VFIO_VM_KERNEL', () => {
    expect(() => readyKernel({ VFIO_VM_KERNEL: '/nonexistent/bzImage' })).toThrow('VFIO_VM_KERNEL=/nonexistent/bzImage: no such file');
    expect(() => readyKernel({ VFIO_VM_KERNEL: join(dir, 'not') })).toThrow(/not an x86 bzImage/);
    expect(() => readyKernel({ VFIO_VM_KERNEL: dir })).toThrow(/not a regular file/);
    expect(() => readyKernel({ VFIO_VM_KERNEL: join(dir, 'bz'), VFIO_VM_MODULES: dir })).toThrow(/lib\/modules/);
  });

  it('keys the cache on the source and the fragment', () => {
    expect(kernelKey('a', 'x')).toBe(kernelKey('a', 'x'));
    expect(kernelKey('a', 'x')).not.toBe(kernelKey('b', 'x'));
    expect(kernelKey('a', 'x')).not.toBe(kernelKey('a', 'x\n'));
  });

  it.sequential('cleans up', () => rmSync(dir, { recursive: true, force: true }));
});

describe('the vfio-vm command', () => {
  const vm = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot(), 'src/cli/vfio-vm.ts'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
      cwd: packageRoot(),
    });

  it('fails with 125 and names an unknown VFIO_VM_KERNEL', () => {
    const r = vm(['true'], { VFIO_VM_KERNEL: '/nonexistent/bzImage' });
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('VFIO_VM_KERNEL=/nonexistent/bzImage: no such file');
  });

  it('exits 2 without a command, and prints usage on --help', () => {
    expect(vm([]).status).toBe(2);
    const h = vm(['--help']);
    expect(h.status).toBe(0);
    expect(h.stdout).toContain('usage: vfio-vm');
  });

  it('documents every option it parses and every VFIO_VM_* variable it reads in --help', () => {
    const help = vm(['--help']).stdout;
    for (const opt of ['-e, --env', '-s, --share', '-t, --timeout', '-v, --verbose', '--build-kernel', '-h, --help']) expect(help).toContain(opt);
    const sources = ['src/vm/run.ts', 'src/vm/kernel.ts', 'src/vm/qemu.ts', 'src/vm/common.ts', 'src/cli/vfio-vm.ts'].map((f) => readFileSync(join(packageRoot(), f), 'utf8')).join('\n');
    const read = new Set([...sources.matchAll(/\benv\.(VFIO_VM_[A-Z_]+)/g)].map((m) => m[1]!));
    expect(read.size).toBeGreaterThan(5);
    for (const v of read) expect(help, v).toContain(v);
  });

  it('exits 2 with the problem and the usage for an unknown option or a share that does not exist', () => {
    const bad = vm(['--no-such-flag', 'true']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown option --no-such-flag');
    expect(bad.stderr).toContain('usage: vfio-vm');
    const share = vm(['-s', '/nonexistent/project', 'true']);
    expect(share.status).toBe(2);
    expect(share.stderr).toContain('share /nonexistent/project: no such directory');
  });

  it('as a user who is not root and has no QEMU, exits 125 naming the package and the command that installs it', () => {
    const bin = mkdtempSync(join(tmpdir(), 'vfio-nobody-'));
    try {
      symlinkSync(process.execPath, join(bin, 'node'));
      chmodSync(bin, 0o755);
      const r = spawnSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', join(packageRoot(), 'src/cli/vfio-vm.ts'), 'true'], {
        encoding: 'utf8',
        cwd: packageRoot(),
        env: { PATH: bin, HOME: '/nonexistent', TSX_TSCONFIG_PATH: join(packageRoot(), 'tsconfig.json') },
      });
      expect(r.status, r.stderr).toBe(125);
      expect(r.stderr).toContain('missing qemu-system-x86_64');
      expect(r.stderr).toMatch(/sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends .*qemu-system-x86/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('refuses an empty command through the API with a usage error', async () => {
    await expect(runInVm([])).rejects.toMatchObject({ name: 'VmError', exitCode: 2 });
  });
});

describe('judging a vitest report', () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-test-'));
  const write = (name: string, r: object): string => {
    writeFileSync(join(dir, name), JSON.stringify(r));
    return join(dir, name);
  };
  const base = { success: true, numTotalTests: 3, numPassedTests: 3, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, testResults: [] };

  it('passes a clean report', () => {
    expect(judgeReport(write('ok.json', base), 'guest')).toEqual({ name: 'guest', passed: 3, failed: 0, problems: [] });
  });

  it('fails a missing report, an empty run, failures and skips', () => {
    expect(judgeReport(join(dir, 'none.json'), 'guest').problems[0]).toMatch(/no report/);
    expect(judgeReport(write('empty.json', { ...base, numTotalTests: 0, numPassedTests: 0 }), 'guest').problems).toEqual(['guest: ran no test']);
    expect(judgeReport(write('fail.json', { ...base, success: false, numFailedTests: 1, numPassedTests: 2 }), 'g').problems).toEqual(['g: 1 failed']);
    const skipped = {
      ...base,
      numPendingTests: 1,
      numPassedTests: 2,
      testResults: [{ name: 'f', assertionResults: [{ fullName: 'a skipped one', status: 'skipped' }] }],
    };
    expect(judgeReport(write('skip.json', skipped), 'g').problems).toEqual(['g: 1 skipped or todo (a skipped one)']);
  });

  it.sequential('cleans up', () => rmSync(dir, { recursive: true, force: true }));
});

describe('system packages', () => {
  it('as non-root, names what is missing and prints the exact apt-get command without running it', () => {
    const reqs = [
      { what: 'qemu-system-x86_64', pkg: 'qemu-system-x86', probe: () => false },
      { what: '/bin/busybox', pkg: 'busybox-static', probe: () => false },
      { what: 'make', pkg: 'make', probe: () => true },
    ];
    let err: VmError | undefined;
    try {
      ensureRequirements(reqs, 1000);
    } catch (e) {
      err = e as VmError;
    }
    expect(err).toBeInstanceOf(VmError);
    expect(err!.exitCode).toBe(125);
    expect(err!.message).toContain('missing qemu-system-x86_64, /bin/busybox');
    expect(err!.message).toContain('apt-get update && apt-get install -y --no-install-recommends busybox-static qemu-system-x86');
  });

  it('does nothing when everything is there', () => {
    expect(() => ensureRequirements([{ what: 'x', pkg: 'x', probe: () => true }], 1000)).not.toThrow();
  });
});
