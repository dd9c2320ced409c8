import { Redis, type RedisOptions } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { probeRedis, REDIS_URL, requireUnderCi } from '../backends/servers.js';
import { TcpProxy } from './tcpProxy.js';

const server = await probeRedis();
if (!server.ok) console.warn(`\n!!! SKIPPING tcpProxy tests: ${server.reason}\n`);
requireUnderCi('Redis (for the TCP proxy tests)', server);

const target = new URL(REDIS_URL);

describe.skipIf(!server.ok)('TcpProxy in front of Redis', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setUp(clientOptions: RedisOptions = {}) {
    const proxy = await TcpProxy.start({ targetHost: target.hostname, targetPort: Number(target.port || 6379) });
    cleanup.push(() => proxy.close());
    const client = new Redis(proxy.port, '127.0.0.1', {
      retryStrategy: () => 50,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      ...clientOptions,
    });
    client.on('error', () => {});
    cleanup.push(() => client.disconnect());
    await new Promise((resolve) => client.once('ready', resolve));
    return { proxy, client };
  }

  it('forwards traffic both ways and reports its port', async () => {
    const { proxy, client } = await setUp();
    expect(proxy.port).toBeGreaterThan(0);
    expect(proxy.cutMode).toBe('open');
    expect(await client.ping()).toBe('PONG');
    expect(await client.echo('x'.repeat(1_000_000))).toHaveLength(1_000_000);
    expect(proxy.connectionCount).toBe(1);
  });

  it('reset: drops live connections and refuses new ones until healed', async () => {
    const { proxy, client } = await setUp();
    proxy.cut('reset');
    expect(proxy.connectionCount).toBe(0);
    await expect(client.ping()).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 200));
    expect(client.status).not.toBe('ready');
    proxy.heal();
    await expect.poll(() => client.ping().catch(() => 'failed'), { timeout: 5000 }).toBe('PONG');
  });

  it('blackhole: keeps connections open but forwards nothing, so only a client timeout notices', async () => {
    const { proxy, client } = await setUp({ commandTimeout: 300 });
    proxy.cut('blackhole');
    await expect(client.ping()).rejects.toThrow(/timed out/i);
    expect(proxy.connectionCount).toBe(1);
    proxy.heal();
    // The blackholed stream lost bytes, so heal() resets it and the client reconnects cleanly.
    await expect.poll(() => client.ping().catch(() => 'failed'), { timeout: 5000 }).toBe('PONG');
  });

  it('close() ends every connection', async () => {
    const { proxy, client } = await setUp();
    await proxy.close();
    await expect.poll(() => client.status).not.toBe('ready');
  });
});
