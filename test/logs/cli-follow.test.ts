import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../support/exec.js';

const root = process.cwd();
const cli = join(root, 'bin/runway.mjs');

/**
 * `runway logs -f` against a scripted server: what a real stack does not produce on demand (a
 * dropped connection mid-log, pieces of a long line with `part: true`).
 */
describe('runway logs -f: resume after a drop, pieces of long lines', () => {
  let server: Server;
  let api = '';
  let dir: string;
  const streamRequests: { from: string | null; lastEventId: string | undefined }[] = [];
  const script = { id: 's1', name: 'big.py', script_id: 's1' };
  const runJson = (status: string) => ({
    id: '11111111-1111-4111-8111-111111111111',
    number: 7,
    status,
    script_id: 's1',
    script,
    failure_reason: null,
    exit_code: null,
    signal: null,
    message: null,
  });
  const line = (seq: number, text: string, part = false) =>
    `event: line\nid: ${seq}\ndata: ${JSON.stringify({ seq, stream: seq === 4 ? 'stderr' : 'stdout', ts: 1, text, ...(part ? { part } : {}) })}\n\n`;

  before(async () => {
    server = createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      const json = (body: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const p = u.pathname.replace('/api/v1/workspaces/w', '');
      if (p === '/scripts/big.py') return json(script);
      if (p === '/runs') return json({ items: [runJson('running')] });
      if (p === `/runs/${runJson('').id}`) return json(runJson('completed'));
      if (p === `/runs/${runJson('').id}/logs/stream`) {
        streamRequests.push({
          from: u.searchParams.get('from'),
          lastEventId: req.headers['last-event-id'] as string | undefined,
        });
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        if (streamRequests.length === 1) {
          res.write(': runway logs\n\n' + line(1, 'aaaa', true) + line(2, 'bbbb', true) + line(3, 'cccc'));
          setTimeout(() => res.destroy(), 50);
        } else {
          res.end(line(4, 'line 4') + 'event: end\ndata: {"lineCount":4,"sealed":true}\n\n');
        }
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ detail: `no route ${p}` }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
    dir = mkdtempSync(join(tmpdir(), 'runway-logsfake-'));
    mkdirSync(join(dir, '.dlt'));
    writeFileSync(join(dir, '.dlt/config.toml'), '[runtime]\nworkspace_id = "w"\n');
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const runway = (...args: string[]) => {
    const env: NodeJS.ProcessEnv = { ...process.env, RUNWAY_TOKEN: 'tok', RUNWAY_CONFIG_DIR: dir };
    delete env.RUNTIME__API_BASE_URL;
    delete env.RUNTIME__AUTH_TOKEN;
    delete env.DLT_PROJECT_DIR;
    return run(process.execPath, [cli, '--api-url', api, ...args], { cwd: dir, env });
  };

  it('joins the pieces of a long line and resumes after the last line it got', async () => {
    const r = await runway('logs', 'big.py', '-f');
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(r.out, 'aaaabbbbcccc\nline 4\n');
    assert.match(r.err, /log stream interrupted, resuming at line 4/);
    assert.deepEqual(
      streamRequests.map((x) => [x.from, x.lastEventId]),
      [
        ['1', undefined],
        ['4', '3'],
      ],
    );
    streamRequests.length = 0;
    const j = await runway('--json', 'logs', 'big.py', '-f');
    assert.equal(j.code, 0, j.err);
    const lines = j.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; text: string; part?: boolean; stream: string });
    assert.deepEqual(
      lines.map((l) => [l.seq, l.text, l.part ?? false, l.stream]),
      [
        [1, 'aaaa', true, 'stdout'],
        [2, 'bbbb', true, 'stdout'],
        [3, 'cccc', false, 'stdout'],
        [4, 'line 4', false, 'stderr'],
      ],
    );
  });
});
