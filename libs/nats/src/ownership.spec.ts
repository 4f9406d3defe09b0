import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connectNats, drainNats } from './index.js';
import { freePort, startNatsServer, type NatsServerHandle } from './nats-server.js';

// The port check happens before the launch: whatever takes the port in between must not be taken
// for the nats-server Runway started.
describe('nats-server port ownership', () => {
  const dirs: string[] = [];
  const servers: NatsServerHandle[] = [];
  const listeners: Server[] = [];
  after(async () => {
    for (const s of servers) await s.stop();
    for (const l of listeners) l.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const newDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'runway-nats-own-'));
    dirs.push(d);
    return d;
  };

  it('refuses a port answered by another process (a plain listener)', async () => {
    const port = await freePort();
    const foreign = createServer((s) => s.on('error', () => undefined));
    listeners.push(foreign);
    await new Promise<void>((r) => foreign.listen(port, '127.0.0.1', r));
    const t0 = Date.now();
    await assert.rejects(
      startNatsServer({ storeDir: newDir(), port }),
      /port \d+ is taken by another process|answered by another process/,
    );
    assert.ok(Date.now() - t0 < 12_000);
  });

  it('refuses a port answered by another nats-server', async () => {
    const theirs = await startNatsServer({ storeDir: newDir() });
    servers.push(theirs);
    await assert.rejects(
      startNatsServer({ storeDir: newDir(), port: theirs.port }),
      /answered by another nats-server|taken by another process/,
    );
    // theirs is untouched
    const nc = await connectNats({ url: theirs.url, name: 'ownership-spec', reconnectForever: false });
    await drainNats(nc);
  });

  it('starts and restarts on a free port (its own server answers)', async () => {
    const s = await startNatsServer({ storeDir: newDir() });
    servers.push(s);
    await s.restart();
    const nc = await connectNats({ url: s.url, name: 'ownership-spec', reconnectForever: false });
    await drainNats(nc);
  });
});
