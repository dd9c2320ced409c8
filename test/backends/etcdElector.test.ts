import { etcd } from './backends.js';
import { electorSuite } from './electorSuite.js';

await electorSuite(etcd);
