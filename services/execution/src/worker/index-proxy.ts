import { chmodSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * The only way out of an install step's network namespace (docs/dependencies.md): an HTTP proxy
 * on a unix socket, bound into the sandbox, that opens connections to the package index's hosts
 * only (CONNECT host:443 for https, absolute-form requests for http) and refuses everything else
 * with 403. A forwarder inside the sandbox (FORWARDER below) turns 127.0.0.1:<port> into this
 * socket, so uv uses it through HTTPS_PROXY/HTTP_PROXY.
 */
export class IndexProxy {
  private constructor(
    private readonly server: Server,
    readonly socketPath: string,
    readonly allowed: ReadonlySet<string>,
    private readonly denied: (what: string) => void,
  ) {}

  static async start(
    socketPath: string,
    allowedHosts: readonly string[],
    denied: (what: string) => void = () => undefined,
  ): Promise<IndexProxy> {
    rmSync(socketPath, { force: true });
    const allowed = new Set(allowedHosts.map((h) => h.toLowerCase()));
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      sockets.add(client);
      client.once('close', () => sockets.delete(client));
      handle(client, allowed, denied);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    chmodSync(socketPath, 0o666); // the workspace's uid connects to it (only the sandbox sees it)
    const p = new IndexProxy(server, socketPath, allowed, denied);
    p.sockets = sockets;
    return p;
  }

  private sockets = new Set<Socket>();

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
  }
}

/** host:port of a CONNECT target or an absolute URL, lower-cased. */
function hostPort(target: string, defaultPort: number): { host: string; port: number } | undefined {
  const m = /^\[?([A-Za-z0-9.\-:]+?)\]?(?::(\d{1,5}))?$/.exec(target);
  if (!m) return undefined;
  return { host: m[1]!.toLowerCase(), port: m[2] ? Number(m[2]) : defaultPort };
}

function refuse(client: Socket, status: string, why: string): void {
  client.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`);
}

function handle(client: Socket, allowed: ReadonlySet<string>, denied: (what: string) => void): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > 64 * 1024) refuse(client, '431 Request Header Fields Too Large', 'headers too large');
      return;
    }
    client.off('data', onData);
    client.pause();
    const text = head.subarray(0, end).toString('latin1');
    const rest = head.subarray(end + 4);
    const [requestLine = '', ...headerLines] = text.split('\r\n');
    const [method = '', target = '', version = 'HTTP/1.1'] = requestLine.split(' ');
    let dest: { host: string; port: number } | undefined;
    let forwardHead: Buffer | undefined;
    if (method === 'CONNECT') {
      dest = hostPort(target, 443);
    } else {
      let url: URL | undefined;
      try {
        url = new URL(target);
      } catch {
        /* not absolute-form */
      }
      if (url && url.protocol === 'http:') {
        dest = { host: url.hostname.toLowerCase(), port: url.port ? Number(url.port) : 80 };
        const headers = headerLines.filter((l) => !/^proxy-/i.test(l));
        forwardHead = Buffer.from(
          `${method} ${url.pathname}${url.search} ${version}\r\n${headers.join('\r\n')}\r\n\r\n`,
          'latin1',
        );
      }
    }
    if (!dest) return refuse(client, '400 Bad Request', 'a proxy request was expected');
    if (!allowed.has(dest.host)) {
      denied(`${dest.host}:${dest.port}`);
      return refuse(
        client,
        '403 Forbidden',
        `runway: the install step may reach the package index only (${[...allowed].join(', ')}), not ${dest.host}`,
      );
    }
    const upstream = createConnection({ host: dest.host, port: dest.port });
    upstream.once('connect', () => {
      if (forwardHead) upstream.write(forwardHead);
      else client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (rest.length) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.once('error', (err) => {
      if (!client.destroyed) refuse(client, '502 Bad Gateway', `runway: ${dest.host}: ${err.message}`);
    });
    client.once('error', () => upstream.destroy());
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  };
  client.on('data', onData);
  client.once('error', () => undefined);
}

/** The hosts of the index and, for PyPI, of its files. */
export function indexHosts(indexUrl: string | undefined, extra: readonly string[] = []): string[] {
  const hosts = new Set<string>(extra.map((h) => h.toLowerCase()));
  const url = new URL(indexUrl ?? 'https://pypi.org/simple');
  hosts.add(url.hostname.toLowerCase());
  if (url.hostname === 'pypi.org') hosts.add('files.pythonhosted.org');
  return [...hosts];
}

/**
 * Inside the sandbox (no network but loopback): listens on 127.0.0.1:<port> and joins each
 * connection to the proxy's unix socket. Run with the sandbox's Python: `python -c FORWARDER sock port`.
 */
export const FORWARDER = String.raw`
import os, socket, sys, threading
sock_path, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(64)
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
def serve(c):
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        u.connect(sock_path)
    except OSError:
        c.close(); return
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    pump(u, c)
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;
