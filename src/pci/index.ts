/**
 * PCI helpers: configuration-space parsing and PCI address formatting.
 */
export * from './config.js';
export * from './address.js';
