import { redis } from './backends.js';
import { electorSuite } from './electorSuite.js';

await electorSuite(redis);
