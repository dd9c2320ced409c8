import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdLeaseStore } from '../../src/adapters/EtcdLeaseStore.js';
import { FileLeaseStore } from '../../src/adapters/FileLeaseStore.js';
import { PostgresLeaseStore } from '../../src/adapters/PostgresLeaseStore.js';
import { RedisLeaseStore } from '../../src/adapters/RedisLeaseStore.js';
import { InvalidOptionsError } from '../../src/errors.js';

// Nothing here connects: the constructors reject before creating a client, and the valid ones are closed at once.
const stores = {
  redis: (timeoutMs: number) => new RedisLeaseStore({ url: 'redis://127.0.0.1:1', timeoutMs }),
  postgres: (timeoutMs: number) => new PostgresLeaseStore({ connectionString: 'postgres://postgres@127.0.0.1:1/x', timeoutMs }),
  etcd: (timeoutMs: number) => new EtcdLeaseStore({ hosts: 'http://127.0.0.1:1', timeoutMs }),
};

describe('store timeoutMs', () => {
  for (const [name, make] of Object.entries(stores)) {
    it(`${name}: a timeoutMs that is not a finite number above 0 is rejected with InvalidOptionsError`, async () => {
      // 0 reported every call as timed out while still sending (and applying) its write.
      for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '5000' as unknown as number]) {
        let err: unknown;
        try {
          make(bad);
        } catch (e) {
          err = e;
        }
        expect(InvalidOptionsError.is(err), `timeoutMs ${String(bad)}`).toBe(true);
        expect((err as InvalidOptionsError).issues[0]?.path).toBe('timeoutMs');
      }
      await make(0.5).close();
    });
  }
});

describe('file store files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fl-file-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes its state file with mode 0600, and versions keep rising after the file is deleted', async () => {
    const path = join(dir, 'ok.json');
    const store = new FileLeaseStore({ path });
    const v1 = await store.compareAndSet('k', null, 1);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    rmSync(path);
    const v2 = await store.compareAndSet('k', null, 2);
    expect(BigInt(v2)).toBeGreaterThan(BigInt(v1));
    await store.close();
  });

  it('watch() after close() registers nothing and does not poll', async () => {
    const path = join(dir, 'closed.json');
    const closed = new FileLeaseStore({ path, pollIntervalMs: 20 });
    const other = new FileLeaseStore({ path });
    await closed.close();
    let calls = 0;
    const off = closed.watch('k', () => {
      calls += 1;
    });
    await other.compareAndSet('k', null, 1);
    await new Promise((r) => setTimeout(r, 300));
    off();
    await other.close();
    expect(calls).toBe(0);
  });
});
