// Regenerates docs/statechart.md from electionMachine: `npx tsx src/inspect/generateStatechartDoc.ts [--check]`.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { statechartDoc } from './statechart.js';

export const STATECHART_DOC_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'statechart.md');

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const fresh = statechartDoc();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(STATECHART_DOC_PATH, 'utf8');
    } catch {}
    if (current !== fresh) {
      console.error(`${STATECHART_DOC_PATH} is stale: run npx tsx src/inspect/generateStatechartDoc.ts`);
      process.exitCode = 1;
    }
  } else {
    writeFileSync(STATECHART_DOC_PATH, fresh);
    console.log(STATECHART_DOC_PATH);
  }
}
