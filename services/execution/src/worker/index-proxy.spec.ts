import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { IndexProxy, indexHosts } from './index-proxy.js';

/** Sends `request` to the proxy's socket, then `after` once the head is answered; returns all it got. */
function ask(socketPath: string, request: string, after = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(socketPath);
    let got = '';
    c.on('data', (d) => {
      const first = got === '';
      got += d.toString();
      if (first && after && got.startsWith('HTTP/1.1 200')) c.write(after);
    });
    c.on('end', () => resolve(got));
    c.on('error', reject);
    c.write(request);
  });
}

describe('the install step index proxy', () => {
  it('tunnels to allowed hosts only (CONNECT and absolute-form http), refusing the rest with 403', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runway-proxy-'));
    // An "index" on the loopback: echoes what it receives, then closes.
    const origin = createServer((s) => s.once('data', (d) => s.end(`echo:${d.toString()}`)));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    const port = (origin.address() as AddressInfo).port;
    const denied: string[] = [];
    const proxy = await IndexProxy.start(join(dir, 'p.sock'), ['127.0.0.1'], (w) => denied.push(w));
    try {
      const tunnel = await ask(
        proxy.socketPath,
        `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: x\r\n\r\n`,
        'ping',
      );
      assert.match(tunnel, /^HTTP\/1\.1 200 Connection established\r\n\r\necho:ping$/);
      const plain = await ask(
        proxy.socketPath,
        `GET http://127.0.0.1:${port}/simple/x/ HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Connection: keep-alive\r\n\r\n`,
      );
      assert.match(
        plain,
        /^echo:GET \/simple\/x\/ HTTP\/1\.1\r\nHost: 127\.0\.0\.1\r\n\r\n$/,
        'origin-form, no Proxy-* header',
      );
      const refused = await ask(proxy.socketPath, `CONNECT localhost:${port} HTTP/1.1\r\n\r\n`);
      assert.match(refused, /^HTTP\/1\.1 403 Forbidden/);
      assert.match(refused, /package index only \(127\.0\.0\.1\), not localhost/);
      const bad = await ask(proxy.socketPath, `GET /relative HTTP/1.1\r\n\r\n`);
      assert.match(bad, /^HTTP\/1\.1 400/);
      assert.deepEqual(denied, [`localhost:${port}`]);
    } finally {
      await proxy.stop();
      origin.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("knows PyPI's file host, and a mirror's own host", () => {
    assert.deepEqual(indexHosts(undefined), ['pypi.org', 'files.pythonhosted.org']);
    assert.deepEqual(indexHosts('https://Mirror.example:8443/simple', ['files.example']), [
      'files.example',
      'mirror.example',
    ]);
  });
});
