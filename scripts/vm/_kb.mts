import { buildKernel } from './kernel.js';
const k = await buildKernel();
console.log(JSON.stringify(k));
