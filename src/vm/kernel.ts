import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, copyFileSync, openSync, readSync, closeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { VmError, assetPath, cacheRoot, say, debug, withLock } from './common.js';
import { DEBIAN_SOURCE_TARBALL, buildRequirements, ensureRequirements } from './deps.js';
import { formatMismatches, parseKconfig, verifyKconfig } from './kconfig.js';

/** Bump when the build steps change in a way that must invalidate cached kernels. */
const RECIPE_VERSION = 1;

/** A guest kernel ready to boot. */
export interface Kernel {
  /** The bzImage's absolute path. */
  bzImage: string;
  /** A directory holding lib/modules/<release>/, or null when there are no modules. */
  modulesRoot: string | null;
  /** The kernel release ('6.12.118'), or null when unknown. */
  release: string | null;
  /** Where it came from, for messages: "cache <key>", "VFIO_VM_KERNEL", … */
  origin: string;
}

/** True when `path` starts with the x86 boot-protocol header of a bzImage ("HdrS" at 0x202). */
export function isBzImage(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    return readSync(fd, buf, 0, 4, 0x202) === 4 && buf.toString('latin1') === 'HdrS';
  } finally {
    closeSync(fd);
  }
}

function moduleRelease(modulesRoot: string): string | null {
  const dir = join(modulesRoot, 'lib', 'modules');
  if (!existsSync(dir)) return null;
  const rels = readdirSync(dir);
  return rels.length === 1 ? rels[0]! : null;
}

/** A kernel named by VFIO_VM_KERNEL (modules from VFIO_VM_MODULES or a `modules/` beside it). */
export function readyKernel(env: NodeJS.ProcessEnv): Kernel {
  const bzImage = resolve(env.VFIO_VM_KERNEL!);
  let st;
  try {
    st = statSync(bzImage);
  } catch {
    throw new VmError(`VFIO_VM_KERNEL=${env.VFIO_VM_KERNEL}: no such file`);
  }
  if (!st.isFile()) throw new VmError(`VFIO_VM_KERNEL=${env.VFIO_VM_KERNEL}: not a regular file`);
  if (!isBzImage(bzImage)) throw new VmError(`VFIO_VM_KERNEL=${env.VFIO_VM_KERNEL}: not an x86 bzImage (no "HdrS" boot header)`);
  let modulesRoot: string | null = null;
  if (env.VFIO_VM_MODULES) {
    modulesRoot = resolve(env.VFIO_VM_MODULES);
    if (!existsSync(join(modulesRoot, 'lib', 'modules'))) {
      throw new VmError(`VFIO_VM_MODULES=${env.VFIO_VM_MODULES}: expected a directory holding lib/modules/<release>/`);
    }
  } else if (existsSync(join(dirname(bzImage), 'modules', 'lib', 'modules'))) {
    modulesRoot = join(dirname(bzImage), 'modules');
  }
  return { bzImage, modulesRoot, release: modulesRoot ? moduleRelease(modulesRoot) : null, origin: 'VFIO_VM_KERNEL' };
}

interface Source {
  /** Stable identity for the cache key. */
  id: string;
  /** True when the identity pins the contents (the Debian package), so a cached build is final. */
  immutable: boolean;
  tree: () => Promise<string>;
}

function debianSource(cache: string): Source {
  const q = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'linux-source-6.12'], { encoding: 'utf8' });
  let version = q.status === 0 ? q.stdout.trim() : '';
  if (!version) {
    const st = statSync(DEBIAN_SOURCE_TARBALL);
    version = `file-${st.size}-${Math.floor(st.mtimeMs)}`;
  }
  const safe = version.replace(/[^A-Za-z0-9.+-]/g, '_');
  const root = join(cache, 'src', `linux-source-6.12_${safe}`);
  return {
    id: `debian:linux-source-6.12:${version}`,
    immutable: true,
    tree: async () => {
      const tree = join(root, 'linux-source-6.12');
      if (existsSync(join(root, '.vfio-extracted'))) return tree;
      say(`extracting ${DEBIAN_SOURCE_TARBALL} (${version}) into ${root}`);
      const tmp = `${root}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      await run('tar', ['-xf', DEBIAN_SOURCE_TARBALL, '-C', tmp], { what: 'extracting the kernel source' });
      writeFileSync(join(tmp, '.vfio-extracted'), version + '\n');
      rmSync(root, { recursive: true, force: true });
      renameSync(tmp, root);
      return tree;
    },
  };
}

function treeSource(path: string): Source {
  const tree = resolve(path);
  if (!existsSync(join(tree, 'Makefile')) || !existsSync(join(tree, 'Kconfig'))) {
    throw new VmError(`VFIO_VM_KERNEL_SRC=${path}: not a kernel source tree (no Makefile and Kconfig)`);
  }
  return { id: `tree:${tree}`, immutable: false, tree: async () => tree };
}

/** The cache key: the source's identity, the fragment's text and the recipe version. */
export function kernelKey(sourceId: string, fragment: string): string {
  return createHash('sha256').update(JSON.stringify({ RECIPE_VERSION, sourceId, fragment })).digest('hex').slice(0, 16);
}

interface RunOpts {
  what: string;
  cwd?: string;
  log?: string;
  /** Lines matching this are counted as build steps for the progress report. */
  progress?: RegExp;
}

/** Runs a build command; output goes to `log` (or is captured), and a failure shows its tail. */
function run(cmd: string, args: string[], opts: RunOpts): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const started = Date.now();
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const logStream = opts.log ? createWriteStream(opts.log, { flags: 'a' }) : null;
    let tail = '';
    let steps = 0;
    let partial = '';
    const onData = (buf: Buffer): void => {
      logStream?.write(buf);
      const text = buf.toString('utf8');
      tail = (tail + text).slice(-8192);
      if (opts.progress) {
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) if (opts.progress.test(l)) steps++;
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = opts.progress
      ? setInterval(() => {
          const s = Math.round((Date.now() - started) / 1000);
          say(`${opts.what}: ${steps} steps, ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`);
        }, 15_000)
      : null;
    child.on('error', (err) => {
      if (timer) clearInterval(timer);
      reject(new VmError(`${opts.what}: cannot run ${cmd}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearInterval(timer);
      logStream?.end();
      if (code === 0) return resolvePromise();
      const last = tail.split('\n').slice(-30).join('\n');
      reject(new VmError(`${opts.what} failed (${cmd} exit ${code ?? signal})${opts.log ? `; full log: ${opts.log}` : ''}\n${last}`));
    });
  });
}

function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * Builds (or finds in the cache) the guest kernel from the repo's fragment on
 * top of tinyconfig. A warm run with the Debian source does no work at all.
 */
export async function buildKernel(env: NodeJS.ProcessEnv = process.env): Promise<Kernel> {
  const cache = cacheRoot(env);
  const fragmentPath = assetPath('kernel.config');
  const fragment = readFileSync(fragmentPath, 'utf8');
  const source = env.VFIO_VM_KERNEL_SRC ? treeSource(env.VFIO_VM_KERNEL_SRC) : null;
  ensureRequirements(buildRequirements(source === null));
  const src = source ?? debianSource(cache);
  const key = kernelKey(src.id, fragment);
  const out = join(cache, 'kernels', key);
  const found = (): Kernel | null => {
    if (!existsSync(join(out, 'kernel.json')) || !existsSync(join(out, 'bzImage'))) return null;
    const meta = JSON.parse(readFileSync(join(out, 'kernel.json'), 'utf8')) as { release: string };
    return { bzImage: join(out, 'bzImage'), modulesRoot: join(out, 'modules'), release: meta.release, origin: `cache ${key}` };
  };
  if (src.immutable) {
    const k = found();
    if (k) {
      debug(`kernel ${k.release} from cache ${out}`);
      return k;
    }
  }
  return withLock(join(cache, 'kernels', `${key}.lock`), async () => {
    if (src.immutable) {
      const k = found();
      if (k) return k;
    }
    const started = Date.now();
    const tree = await src.tree();
    const build = join(cache, 'build', key);
    mkdirSync(build, { recursive: true });
    const log = join(build, 'build.log');
    writeFileSync(log, '');
    const make = (args: string[], what: string, progress?: RegExp): Promise<void> =>
      run('make', ['-C', tree, `O=${build}`, 'ARCH=x86_64', ...args], { what, log, progress });
    say(`building the guest kernel from ${src.id} (key ${key}) in ${build}`);
    await make(['tinyconfig'], 'make tinyconfig');
    // Kconfig lets a later assignment override an earlier one, so appending the
    // fragment and running olddefconfig resolves it against the dependencies.
    writeFileSync(join(build, '.config'), readFileSync(join(build, '.config'), 'utf8') + '\n' + fragment);
    await make(['olddefconfig'], 'make olddefconfig');
    const bad = verifyKconfig(parseKconfig(fragment), parseKconfig(readFileSync(join(build, '.config'), 'utf8')));
    if (bad.length) {
      throw new VmError(`the kernel config lost ${bad.length} symbol(s) of ${fragmentPath} after olddefconfig (a dependency is missing):\n${formatMismatches(bad)}`);
    }
    const jobs = Math.max(1, availableParallelism());
    await make([`-j${jobs}`, 'bzImage', 'modules'], `kernel build (-j${jobs})`, /^\s+(CC|LD|AR|AS|CC \[M\]|LD \[M\]|HOSTCC|GEN|OBJCOPY)\s/);
    const stage = join(build, 'modules-stage');
    rmSync(stage, { recursive: true, force: true });
    await make([`INSTALL_MOD_PATH=${stage}`, 'INSTALL_MOD_STRIP=1', 'modules_install'], 'make modules_install');
    const rel = spawnSync('make', ['-s', '-C', tree, `O=${build}`, 'ARCH=x86_64', 'kernelrelease'], { encoding: 'utf8' });
    const release = rel.stdout.trim().split('\n').pop() ?? '';
    if (rel.status !== 0 || !release) throw new VmError(`make kernelrelease failed: ${rel.stderr}`);
    const tmp = `${out}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    copyFileSync(join(build, 'arch', 'x86', 'boot', 'bzImage'), join(tmp, 'bzImage'));
    copyFileSync(join(build, '.config'), join(tmp, 'config'));
    renameSync(stage, join(tmp, 'modules'));
    writeFileSync(join(tmp, 'kernel.json'), JSON.stringify({ key, source: src.id, release, builtAt: new Date().toISOString() }, null, 2) + '\n');
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    say(`kernel ${release} built in ${fmtDuration(Date.now() - started)}; cached at ${out}`);
    return found()!;
  });
}

/**
 * The kernel to boot: VFIO_VM_KERNEL if set, else the cached one, else one
 * built now from Debian's linux-source-6.12 (or VFIO_VM_KERNEL_SRC) with
 * progress on stderr, installing the build's packages with apt-get when root.
 *
 * @param env - where the VFIO_VM_* variables are read (default `process.env`)
 * @throws VmError (exit code 125) for a bad VFIO_VM_KERNEL, missing packages or a failed build
 */
export async function resolveKernel(env: NodeJS.ProcessEnv = process.env): Promise<Kernel> {
  return env.VFIO_VM_KERNEL ? readyKernel(env) : buildKernel(env);
}
