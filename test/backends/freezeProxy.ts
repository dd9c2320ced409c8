import net from 'node:net';

/**
 * A TCP proxy that can "freeze": stop forwarding in both directions while keeping every socket open and never
 * sending FIN/RST back (allowHalfOpen), like a real partition or a dead NAT entry. Unlike test/helpers/tcpProxy.ts
 * it never closes the client side when the client half-closes.
 */
export class FreezeProxy {
  private frozen = false;
  private readonly sockets = new Set<net.Socket>();
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<FreezeProxy> {
    let self!: FreezeProxy;
    const server = net.createServer({ allowHalfOpen: true }, (client) => {
      client.on('error', () => {});
      self.sockets.add(client);
      if (self.frozen) {
        client.resume();
        return;
      }
      const upstream = net.connect({ port: targetPort, host: targetHost, allowHalfOpen: true });
      upstream.on('error', () => {});
      self.sockets.add(upstream);
      const fwd = (from: net.Socket, to: net.Socket) => {
        from.on('data', (chunk) => {
          if (!self.frozen) to.write(chunk);
        });
        from.on('end', () => {
          if (!self.frozen) to.end();
        });
      };
      fwd(client, upstream);
      fwd(upstream, client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new FreezeProxy(server, (server.address() as net.AddressInfo).port);
    return self;
  }

  freeze(): void {
    this.frozen = true;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves to 'timeout' if `p` has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([p, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}
