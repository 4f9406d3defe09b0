import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestStack, type TestStack } from '../support/stack.js';
import { createBatchJob, newUser, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';
import { waitForSealRecord } from './seal.js';
import { readSse } from './sse.js';

const SECRET = 'log-secret-that-must-not-leak';
const LINES = 20;

const code = {
  'live.py': [
    'import base64, pathlib, sys, time, tomllib',
    'secret = tomllib.loads(pathlib.Path(".dlt/prod.secrets.toml").read_text())["sources"]["demo"]["api_key"]',
    `for i in range(1, ${LINES + 1}):`,
    '    out = sys.stderr if i % 3 == 0 else sys.stdout',
    '    print(f"line {i}", file=out, flush=True)',
    '    if i == 5: print(f"the secret {secret} and {base64.b64encode(secret.encode()).decode()}", flush=True)',
    '    time.sleep(0.05)',
    '',
  ].join('\n'),
  // A 1 MB line, binary garbage, and the secret written in two flushed halves (a write boundary inside it).
  'rough.py': [
    'import os, pathlib, sys, time, tomllib',
    'secret = tomllib.loads(pathlib.Path(".dlt/prod.secrets.toml").read_text())["sources"]["demo"]["api_key"]',
    'print("begin", flush=True)',
    'sys.stdout.write("x" * (1024 * 1024) + "\\n"); sys.stdout.flush()',
    'os.write(1, bytes((i * 131 + 7) % 256 for i in range(4096)) + b"\\n")',
    'sys.stdout.write("half " + secret[:9]); sys.stdout.flush(); time.sleep(0.3)',
    'sys.stdout.write(secret[9:] + " done\\n"); sys.stdout.flush()',
    'print("end", flush=True)',
    '',
  ].join('\n'),
};

interface LineData {
  seq: number;
  stream: 'stdout' | 'stderr';
  ts: number;
  text: string;
}

describe('run logs: LOGS stream and SSE follow', () => {
  let s: TestStack;
  let ws: string;
  const base = () => `/api/v1/workspaces/${ws}`;

  before(async () => {
    s = await startTestStack();
    ws = s.workspaceId;
    await uploadPackage(
      s,
      'deployments',
      Object.entries(code).map(([path, content]) => ({ path, content })),
    );
    await uploadPackage(s, 'configurations', [
      { path: 'config.toml', content: 'log_level = "WARNING"\n' },
      { path: 'prod.secrets.toml', content: `[sources.demo]\napi_key = "${SECRET}"\n` },
    ]);
    for (const name of Object.keys(code)) await createBatchJob(s, name);
  });
  after(() => s.stop());

  let runId = '';

  it('follows a run live: every line in order, masked, ending at the seal', async () => {
    const created = await s.call('POST', `${base()}/runs`, {
      script_id_or_name_or_secret: 'live.py',
      profile: null,
    });
    assert.equal(created.status, 201, created.text);
    runId = (created.json as Json).id as string;
    const res = await readSse(`${s.url}${base()}/runs/${runId}/logs/stream`, s.adminToken, {
      timeoutMs: 60_000,
    });
    assert.equal(res.status, 200, res.body);
    const lines = res.events.filter((e) => e.event === 'line');
    const end = res.events.at(-1)!;
    assert.equal(end.event, 'end');
    const endData = JSON.parse(end.data) as { lineCount: number; sealed: boolean };
    assert.equal(endData.sealed, true);
    const data = lines.map((e) => JSON.parse(e.data) as LineData);
    // Contiguous sequence numbers from 1, ids = seq, and the seal counts them all.
    assert.deepEqual(
      data.map((d) => d.seq),
      data.map((_, i) => i + 1),
    );
    assert.deepEqual(
      lines.map((e) => e.id),
      data.map((d) => String(d.seq)),
    );
    assert.equal(endData.lineCount, data.length);
    // The script's lines, in order, with their streams.
    const own = data.filter((d) => /^line \d+$/.test(d.text));
    assert.deepEqual(
      own.map((d) => d.text),
      Array.from({ length: LINES }, (_, i) => `line ${i + 1}`),
    );
    for (const d of own) assert.equal(d.stream, Number(d.text.slice(5)) % 3 === 0 ? 'stderr' : 'stdout');
    // Live: the first line arrived well before the last (the script takes ≥ 1 s).
    const first = lines.find((e) => e.data.includes('"line 1"'))!;
    const last = lines.find((e) => e.data.includes(`"line ${LINES}"`))!;
    assert.ok(last.at - first.at >= 500, `lines arrived live (${last.at - first.at} ms apart)`);
    // Masked, in the stream as in the compatible text.
    const all = data.map((d) => d.text).join('\n');
    assert.ok(!all.includes(SECRET), 'the secret never leaves the worker');
    assert.ok(!all.includes(Buffer.from(SECRET).toString('base64')), 'nor its base64 form');
    assert.match(all, /the secret \*\*\* and \*\*\*/);
    await waitForStatus(s, runId, ['completed']);
    const logs = await s.call('GET', `${base()}/runs/${runId}/logs`);
    assert.equal(logs.status, 200);
    assert.ok(!String((logs.json as Json).logs).includes(SECRET));
  });

  it('resumes from a sequence number (from= and Last-Event-ID), replaying a sealed log to its end', async () => {
    const res = await readSse(`${s.url}${base()}/runs/${runId}/logs/stream?from=5`, s.adminToken);
    assert.equal(res.status, 200);
    const seqs = res.events
      .filter((e) => e.event === 'line')
      .map((e) => (JSON.parse(e.data) as LineData).seq);
    assert.equal(seqs[0], 5);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i + 5),
    );
    assert.equal(res.events.at(-1)!.event, 'end');
    const viaHeader = await fetch(`${s.url}${base()}/runs/${runId}/logs/stream`, {
      headers: { authorization: `Bearer ${s.adminToken}`, 'last-event-id': '10' },
    });
    const text = await viaHeader.text();
    assert.match(text, /^id: 11$/m);
    assert.doesNotMatch(text, /^id: 10$/m);
    assert.match(text, /event: end/);
  });

  it('answers 404 for a run of another workspace and for unknown runs', async () => {
    const bob = await newUser(s, 'logs-bob@example.com');
    const other = await readSse(
      `${s.url}/api/v1/workspaces/${bob.workspaceId}/runs/${runId}/logs/stream`,
      bob.token,
    );
    assert.equal(other.status, 404);
    const notMember = await readSse(`${s.url}${base()}/runs/${runId}/logs/stream`, bob.token);
    assert.ok(notMember.status === 403 || notMember.status === 404, String(notMember.status));
    const unknown = await readSse(
      `${s.url}${base()}/runs/00000000-0000-4000-8000-000000000000/logs/stream`,
      s.adminToken,
    );
    assert.equal(unknown.status, 404);
    assert.equal((await readSse(`${s.url}${base()}/runs/nope/logs/stream`, s.adminToken)).status, 404);
  });

  it('carries a 1 MB line, binary garbage and a secret written across two writes; the seal is recorded', async () => {
    const created = await s.call('POST', `${base()}/runs`, {
      script_id_or_name_or_secret: 'rough.py',
      profile: null,
    });
    assert.equal(created.status, 201, created.text);
    const id = (created.json as Json).id as string;
    const res = await readSse(`${s.url}${base()}/runs/${id}/logs/stream`, s.adminToken, {
      timeoutMs: 60_000,
    });
    const data = res.events
      .filter((e) => e.event === 'line')
      .map((e) => JSON.parse(e.data) as LineData & { part?: true });
    const end = JSON.parse(res.events.at(-1)!.data) as { lineCount: number; sealed: boolean };
    assert.equal(end.sealed, true);
    assert.equal(end.lineCount, data.length);
    // Pieces of the 1 MB line: ≤ 64 KiB each, all but the last marked `part`, together the line.
    const pieces = data.filter((d) => /^x+$/.test(d.text));
    assert.equal(pieces.length, 16);
    assert.equal(pieces.map((p) => p.text).join('').length, 1024 * 1024);
    assert.ok(pieces.every((p) => Buffer.byteLength(p.text) <= 65536));
    assert.deepEqual(
      pieces.map((p) => p.part === true),
      pieces.map((_, i) => i < 15),
    );
    const texts = data.map((d) => d.text);
    assert.ok(texts.includes('half *** done'), texts.filter((t) => t.startsWith('half')).join());
    assert.ok(!texts.join('\n').includes(SECRET));
    assert.ok(
      texts.some((t) => t.includes('\uFFFD')),
      'invalid UTF-8 shown as U+FFFD',
    );
    assert.equal(texts[0], 'begin');
    assert.equal(texts.at(-1), 'end');
    await waitForStatus(s, id, ['completed']);
    // The compatible text: the same lines, the 1 MB line whole.
    const logs = String(((await s.call('GET', `${base()}/runs/${id}/logs`)).json as Json).logs);
    const lines = logs.split('\n');
    assert.equal(lines[0], 'begin');
    assert.equal(lines[1], 'x'.repeat(1024 * 1024));
    assert.ok(lines.includes('half *** done'));
    assert.ok(!logs.includes(SECRET));
    // RunLogsSealed on the run's `runlog` aggregate, with the final count.
    const row = await waitForSealRecord(s, id);
    assert.equal(row.line_count, end.lineCount);
    assert.equal(row.sealed_by, 'worker');
  });
});
