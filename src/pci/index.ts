/**
 * PCI helpers: configuration-space parsing, PCI address formatting, and
 * binding a function to a driver.
 */
export * from './config.js';
export * from './address.js';
export * from './bind.js';
