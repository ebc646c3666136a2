#!/usr/bin/env node
'use strict';
/*
 * npm's install step for vfio. It downloads nothing:
 *   1. VFIO_NATIVE_PATH set: that build is the user's choice, nothing to do.
 *   2. A binary that node-gyp-build would load (build/Release, or the prebuilt
 *      prebuilds/<platform>-<arch>/*.node shipped in the package) loads in a
 *      child process: use it.
 *   3. Otherwise compile native/ with node-gyp (binding.gyp, shipped too).
 * When 3 fails, it says what was tried, what is missing and how to fix it, and
 * exits non-zero. A binary is only ever tried in a child, so a corrupt or
 * foreign one can never take the install down with it.
 */
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { delimiter, dirname, join, relative } = require('node:path');

const root = join(__dirname, '..');
const say = (msg) => process.stderr.write(`vfio: ${msg}\n`);

/** null when `file` loads as the vfio addon, else a one-line reason. */
function loadError(file) {
  const probe = 'const a = require(process.argv[1]); if (typeof a.layouts !== "function") throw new Error("not the vfio addon"); a.layouts();';
  const r = spawnSync(process.execPath, ['-e', probe, file], { encoding: 'utf8', timeout: 30000 });
  if (r.status === 0) return null;
  if (r.signal) return `the loader died with ${r.signal}`;
  const line = (r.stderr || '').split('\n').find((l) => /Error/.test(l));
  return (line || `exit ${r.status}`).trim();
}

function candidate() {
  try {
    return require('node-gyp-build').path(root);
  } catch (e) {
    return null;
  }
}

function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch (e) {
    const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    return existsSync(bundled) ? bundled : null;
  }
}

function onPath(cmd) {
  return (process.env.PATH || '').split(delimiter).some((d) => d && existsSync(join(d, cmd)));
}

function main() {
  if (process.env.VFIO_NATIVE_PATH) {
    say(`VFIO_NATIVE_PATH=${process.env.VFIO_NATIVE_PATH}: using that addon, nothing to build`);
    return 0;
  }
  const fromSource = process.env.npm_config_build_from_source === 'true' || process.env.VFIO_BUILD_FROM_SOURCE === '1';
  const tried = [];
  if (!fromSource) {
    const file = candidate();
    if (file) {
      const err = loadError(file);
      if (err === null) {
        if (process.env.npm_config_loglevel === 'verbose') say(`using ${relative(root, file)}`);
        return 0;
      }
      tried.push(`${relative(root, file)} did not load: ${err}`);
      say(`${relative(root, file)} does not load here (${err}); compiling from native/`);
    } else {
      tried.push(`no prebuilt addon for ${process.platform}-${process.arch} in prebuilds/`);
    }
  }
  const gyp = nodeGyp();
  let built = false;
  if (gyp) {
    const r = spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
    built = r.status === 0;
    if (!built) tried.push(`compiling native/ with node-gyp failed (${r.signal || `exit ${r.status}`})`);
  } else {
    tried.push('compiling native/ needs node-gyp, which was not found (it comes with npm)');
  }
  if (built) {
    const file = join(root, 'build', 'Release', 'vfio.node');
    const err = loadError(file);
    if (err === null) return 0;
    tried.push(`the compiled build/Release/vfio.node did not load: ${err}`);
  }
  const missing = ['python3', 'make', 'g++'].filter((c) => !onPath(c));
  say('cannot install the native addon.');
  for (const t of tried) process.stderr.write(`  - ${t}\n`);
  if (missing.length) process.stderr.write(`  - missing on PATH: ${missing.join(', ')}\n`);
  process.stderr.write(
    '  fix: install a C++ toolchain (Debian/Ubuntu: apt-get install python3 make g++) and run `npm rebuild vfio`,\n' +
      '       or set VFIO_NATIVE_PATH to a vfio.node built elsewhere and install again.\n',
  );
  return 1;
}

process.exitCode = main();
