import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { followSse, isAbortError, SseParser, type LogLine } from './follow.js';
import { ClientError, RunwayClient } from './index.js';

describe('SseParser', () => {
  it('parses events split anywhere, CRLF/CR/LF, comments, multi-line data and ids', () => {
    const text =
      ': hello\r\n\r\nevent: line\r\nid: 1\r\ndata: {"a":\r\ndata:  1}\r\n\r\n' +
      'event:end\rdata:x\r\rdata: plain\n\n: ping\n\nid: 7\n\n';
    for (const size of [1, 2, 3, 7, text.length]) {
      const p = new SseParser();
      const got = [];
      for (let i = 0; i < text.length; i += size) got.push(...p.push(text.slice(i, i + size)));
      assert.deepEqual(got, [
        { event: 'line', id: '1', data: '{"a":\n 1}' },
        { event: 'end', id: '1', data: 'x' },
        { event: 'message', id: '1', data: 'plain' },
      ]);
      assert.equal(p.lastEventId, '7');
    }
  });
});

const line = (seq: number, extra: Partial<LogLine> = {}) =>
  `event: line\nid: ${seq}\ndata: ${JSON.stringify({ seq, stream: 'stdout', ts: 1, text: `l${seq}`, ...extra })}\n\n`;

describe('followSse', () => {
  let server: Server;
  let url = '';
  const requests: { from: string | null; lastEventId: string | undefined; auth: string | undefined }[] = [];
  let handler: (req: IncomingMessage, res: ServerResponse, n: number) => void = () => undefined;
  before(async () => {
    server = createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      requests.push({
        from: u.searchParams.get('from'),
        lastEventId: req.headers['last-event-id'] as string | undefined,
        auth: req.headers.authorization,
      });
      handler(req, res, requests.length);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
  });
  after(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );

  it('stops at an error event with a 4xx status (access withdrawn) and resumes after one without', async () => {
    requests.length = 0;
    handler = (_req, res, n) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (n === 1) res.end(line(1) + 'event: error\ndata: {"detail":"boom"}\n\n');
      else res.end(line(2) + 'event: error\ndata: {"status":401,"detail":"token has been revoked"}\n\n');
    };
    const got: number[] = [];
    const c = new RunwayClient({ apiBase: url, token: 'tok' });
    await assert.rejects(
      c.followRunLogs('w', 'r', { onLine: (l) => void got.push(l.seq), baseDelayMs: 10 }),
      (err: unknown) => err instanceof ClientError && err.status === 401 && /revoked/.test(err.detail),
    );
    assert.deepEqual(got, [1, 2]);
    assert.equal(requests.length, 2, 'no resume after the refusal');
  });

  it('resumes after a dropped connection from the last line, each line once, to the end', async () => {
    requests.length = 0;
    handler = (_req, res, n) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (n === 1) {
        res.write(': hi\n\n' + line(1) + line(2) + line(3, { part: true }));
        setTimeout(() => res.destroy(), 20); // dropped
      } else if (n === 2) {
        res.end(); // ends without `end`: also a drop
      } else {
        // The server replays from `from`; a duplicate is skipped anyway.
        res.end(line(3, { part: true }) + line(4) + 'event: end\ndata: {"lineCount":4,"sealed":true}\n\n');
      }
    };
    const got: LogLine[] = [];
    const reconnects: number[] = [];
    const c = new RunwayClient({ apiBase: url, token: 'tok' });
    const end = await c.followRunLogs('w', 'r', {
      onLine: (l) => void got.push(l),
      onReconnect: (i) => reconnects.push(i.from),
      baseDelayMs: 10,
    });
    assert.deepEqual(
      got.map((l) => l.seq),
      [1, 2, 3, 4],
    );
    assert.equal(got[2]!.part, true);
    assert.deepEqual(end, { lineCount: 4, sealed: true, lastSeq: 4, reconnects: 2 });
    assert.deepEqual(reconnects, [4, 4]);
    assert.deepEqual(
      requests.map((r) => [r.from, r.lastEventId]),
      [
        ['1', undefined],
        ['4', '3'],
        ['4', '3'],
      ],
    );
    assert.equal(requests[0]!.auth, 'Bearer tok');
  });

  it('gives up after maxRetries consecutive failures; 4xx is not retried', async () => {
    requests.length = 0;
    handler = (_req, res) => {
      res.writeHead(503);
      res.end('busy');
    };
    const c = new RunwayClient({ apiBase: url });
    await assert.rejects(
      c.followRunLogs('w', 'r', { onLine: () => undefined, maxRetries: 2, baseDelayMs: 5 }),
      (e: unknown) => e instanceof ClientError && e.status === 0 && /after 2 retries/.test(e.message),
    );
    assert.equal(requests.length, 3);
    requests.length = 0;
    handler = (_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ detail: 'run r not found' }));
    };
    await assert.rejects(
      c.followRunLogs('w', 'r', { onLine: () => undefined }),
      (e: unknown) => e instanceof ClientError && e.status === 404 && e.detail === 'run r not found',
    );
    assert.equal(requests.length, 1);
  });

  it('an error of onLine is passed on, not retried', async () => {
    requests.length = 0;
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(line(1) + line(2));
    };
    await assert.rejects(
      followSse(
        `${url}/x`,
        {},
        {
          onLine: () => {
            throw new Error('EPIPE');
          },
        },
      ),
      /EPIPE/,
    );
    assert.equal(requests.length, 1);
  });

  it('aborts with an AbortError, and a silent connection counts as dropped', async () => {
    requests.length = 0;
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
    };
    const ac = new AbortController();
    const p = followSse(`${url}/x`, {}, { onLine: () => undefined, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(p, (e: unknown) => isAbortError(e));
    await assert.rejects(
      followSse(
        `${url}/x`,
        {},
        { onLine: () => undefined, idleTimeoutMs: 50, maxRetries: 1, baseDelayMs: 5 },
      ),
      /no data for 50 ms/,
    );
    assert.equal(requests.length, 3);
  });
});
