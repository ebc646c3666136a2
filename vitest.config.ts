import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Native addons crash in worker-thread pools, so every test file runs in a
// forked process. The host project holds pure unit tests; the guest project
// runs inside the test-bed VM (npm run test:guest) against the real kernel,
// one file at a time because the files share kernel state (mdev pools, modules).
export default defineConfig({
  // Examples import the package by its name, as users do (tsconfig.json has the same paths).
  resolve: {
    alias: [
      { find: /^vfio\/vm$/, replacement: fileURLToPath(new URL('./src/vm/index.ts', import.meta.url)) },
      { find: /^vfio$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
    ],
  },
  test: {
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'host',
          include: ['test/host/**/*.test.ts'],
        },
      },
      {
        // Boots real guests from the host (src/cli/vfio-vm.ts), one file at a time.
        extends: true,
        test: {
          name: 'bed',
          include: ['test/bed/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'guest',
          include: ['test/guest/**/*.test.ts'],
          setupFiles: ['test/guest/setup.ts'],
          fileParallelism: false,
          // One forked process runs the files in turn: a node start costs seconds
          // under TCG, and the files share kernel state anyway.
          isolate: false,
          // The leak tests at scale collect garbage before they compare.
          execArgv: ['--expose-gc'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
