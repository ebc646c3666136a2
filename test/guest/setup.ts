// Guest tests exercise the real kernel; outside the test-bed VM they would fail
// in confusing ways (or touch the host's devices), so refuse to run there.
if (process.env.VFIO_VM_GUEST !== '1') {
  throw new Error('guest tests run inside the test-bed VM: use `npm run test:guest` (or `npm run vm -- npx vitest run --project guest`)');
}
