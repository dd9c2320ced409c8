export type { TestAdapterOptions } from './adapters/testAdapter.js';

export { testAdapter } from './adapters/testAdapter.js';
export { TestClock } from './TestClock.js';
