import net from 'node:net';

/**
 * How a cut behaves:
 * - `reset`: every connection is destroyed and new ones are closed at once (a crashed server, a firewall RST).
 * - `blackhole`: connections stay open but nothing is forwarded in either direction, and new connections are
 *   accepted and swallowed (a partition: the client only notices through its own timeouts).
 */
export type CutMode = 'reset' | 'blackhole';

export interface TcpProxyOptions {
  readonly targetHost?: string;
  readonly targetPort: number;
  /** Port to listen on; 0 (the default) picks a free one. */
  readonly port?: number;
}

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  /** Set while a blackhole cut swallowed this pair's traffic; its byte stream has holes, so heal() resets it. */
  holed: boolean;
}

/** A TCP proxy in front of a server, for fault tests: cut the link, heal it, and watch the client cope. */
export class TcpProxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<Pair>();
  private readonly swallowed = new Set<net.Socket>();
  private mode: 'open' | CutMode = 'open';
  /** Extra one-way delay for every chunk forwarded (both directions), in ms; order is kept. */
  private latencyMs = 0;
  private listeningPort = 0;

  private constructor(private readonly options: TcpProxyOptions) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  static async start(options: TcpProxyOptions): Promise<TcpProxy> {
    const proxy = new TcpProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(options.port ?? 0, '127.0.0.1', () => {
        proxy.server.off('error', reject);
        resolve();
      });
    });
    proxy.listeningPort = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  get port(): number {
    return this.listeningPort;
  }

  get cutMode(): 'open' | CutMode {
    return this.mode;
  }

  /** Connections currently forwarded (or held open by a blackhole). */
  get connectionCount(): number {
    return this.pairs.size + this.swallowed.size;
  }

  cut(mode: CutMode = 'reset'): void {
    this.mode = mode;
    if (mode === 'reset') {
      for (const pair of [...this.pairs]) this.destroy(pair);
    } else {
      for (const pair of this.pairs) pair.holed = true;
    }
  }

  /** Delays every chunk forwarded from now on by `ms` in each direction (0 turns it off). */
  delay(ms: number): void {
    this.latencyMs = ms;
  }

  heal(): void {
    this.mode = 'open';
    for (const pair of [...this.pairs]) if (pair.holed) this.destroy(pair);
    for (const socket of this.swallowed) socket.destroy();
    this.swallowed.clear();
  }

  async close(): Promise<void> {
    for (const pair of [...this.pairs]) this.destroy(pair);
    for (const socket of this.swallowed) socket.destroy();
    this.swallowed.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    client.on('error', () => {});
    if (this.mode === 'reset') {
      client.destroy();
      return;
    }
    if (this.mode === 'blackhole') {
      this.swallowed.add(client);
      client.on('close', () => this.swallowed.delete(client));
      client.resume();
      return;
    }
    const upstream = net.connect(this.options.targetPort, this.options.targetHost ?? '127.0.0.1');
    upstream.on('error', () => {});
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    const pair: Pair = { client, upstream, holed: false };
    this.pairs.add(pair);
    this.forward(pair, client, upstream);
    this.forward(pair, upstream, client);
    client.on('close', () => this.destroy(pair));
    upstream.on('close', () => this.destroy(pair));
  }

  /** Manual forwarding instead of pipe(), so that a blackhole can drop bytes while keeping both sockets open. */
  private forward(pair: Pair, from: net.Socket, to: net.Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (pair.holed || this.mode === 'blackhole') {
        pair.holed = true;
        return;
      }
      if (this.latencyMs > 0) {
        setTimeout(() => {
          if (!pair.holed) to.write(chunk);
        }, this.latencyMs);
        return;
      }
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
  }

  private destroy(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream.destroy();
  }
}
