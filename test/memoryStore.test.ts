import { MemoryLeaseStore } from '../src/adapters/MemoryLeaseStore.js';
import { testAdapter } from '../src/adapters/testAdapter.js';

testAdapter('memory', { create: () => new MemoryLeaseStore() });
testAdapter('memory with store clock', { create: () => new MemoryLeaseStore({ storeClock: () => 1000 }) });
