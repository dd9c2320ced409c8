import { postgres } from './backends.js';
import { electorSuite } from './electorSuite.js';

await electorSuite(postgres);
