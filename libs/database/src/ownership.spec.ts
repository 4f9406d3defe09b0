import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort } from '#libs/nats';
import { startEmbeddedPostgres } from './embedded.js';

describe('embedded PostgreSQL port ownership', () => {
  const dirs: string[] = [];
  const listeners: Server[] = [];
  after(() => {
    for (const l of listeners) l.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('refuses a port taken by another process between the check and the launch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runway-pg-own-'));
    chmodSync(dir, 0o755); // as root, PostgreSQL runs as the postgres user
    dirs.push(dir);
    const port = await freePort();
    const foreign = createServer((s) => s.on('error', () => undefined));
    listeners.push(foreign);
    await new Promise<void>((r) => foreign.listen(port, '127.0.0.1', r));
    await assert.rejects(
      startEmbeddedPostgres({ dir: join(dir, 'pg'), port }),
      /port \d+ is taken by another process/,
    );
    // Once the port is free, the same data dir starts (and is the server that answers).
    foreign.close();
    const pg = await startEmbeddedPostgres({ dir: join(dir, 'pg'), port });
    await pg.stop();
  });
});
