import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assetPath } from '../../src/vm/common.js';
import { formatMismatches, parseKconfig, verifyKconfig } from '../../src/vm/kconfig.js';

describe('parseKconfig', () => {
  it('reads y/m values, literals and "is not set" lines; later lines win', () => {
    const m = parseKconfig(
      ['CONFIG_A=y', 'CONFIG_B=m', '# CONFIG_C is not set', 'CONFIG_D="str"', 'CONFIG_E=8', '# a comment', 'CONFIG_A=m'].join('\n'),
    );
    expect([...m]).toEqual([
      ['CONFIG_A', 'm'],
      ['CONFIG_B', 'm'],
      ['CONFIG_C', 'n'],
      ['CONFIG_D', '"str"'],
      ['CONFIG_E', '8'],
    ]);
  });
});

describe('verifyKconfig', () => {
  it('names symbols that were dropped, changed, or turned on against the fragment', () => {
    const fragment = parseKconfig('CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=y\n');
    const final = parseKconfig('CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\n');
    const bad = verifyKconfig(fragment, final);
    expect(bad).toEqual([
      { symbol: 'CONFIG_B', wanted: 'm', got: 'y' },
      { symbol: 'CONFIG_C', wanted: 'n', got: 'y' },
      { symbol: 'CONFIG_D', wanted: 'y', got: 'n' },
    ]);
    expect(formatMismatches(bad)).toContain('CONFIG_D: wanted y, got n');
  });

  it('accepts a final config that has everything', () => {
    expect(verifyKconfig(parseKconfig('CONFIG_A=y\n# CONFIG_B is not set'), parseKconfig('CONFIG_A=y\n'))).toEqual([]);
  });
});

describe('the repository fragment', () => {
  const frag = parseKconfig(readFileSync(assetPath('kernel.config'), 'utf8'));
  it.each([
    ['CONFIG_VFIO', 'y'],
    ['CONFIG_VFIO_GROUP', 'y'],
    ['CONFIG_VFIO_CONTAINER', 'y'],
    ['CONFIG_VFIO_IOMMU_TYPE1', 'y'],
    ['CONFIG_VFIO_NOIOMMU', 'y'],
    ['CONFIG_VFIO_DEVICE_CDEV', 'y'],
    ['CONFIG_IOMMUFD', 'y'],
    ['CONFIG_IOMMUFD_VFIO_CONTAINER', 'n'],
    ['CONFIG_VFIO_PCI', 'y'],
    ['CONFIG_SAMPLE_VFIO_MDEV_MTTY', 'm'],
    ['CONFIG_SAMPLE_VFIO_MDEV_MDPY', 'm'],
    ['CONFIG_SAMPLE_VFIO_MDEV_MBOCHS', 'm'],
    ['CONFIG_DMA_SHARED_BUFFER', 'y'],
    ['CONFIG_INTEL_IOMMU', 'y'],
    ['CONFIG_IRQ_REMAP', 'y'],
    ['CONFIG_ADVISE_SYSCALLS', 'y'],
    ['CONFIG_9P_FS', 'y'],
    ['CONFIG_DEVTMPFS', 'y'],
  ])('asks for %s=%s', (sym, val) => {
    expect(frag.get(sym)).toBe(val);
  });
});
