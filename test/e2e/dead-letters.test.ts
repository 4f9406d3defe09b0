import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { integrationRegistry } from '#libs/contracts';
import type { EventStore } from '#libs/eventstore';
import { runwayCliPath } from '../support/cli.js';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const deadLetter = z.object({
  projection: z.string(),
  seq: z.number(),
  subject: z.string(),
  eventTypes: z.string().nullable(),
  error: z.string(),
  halted: z.boolean(),
});
const statusRows = z.array(
  z.object({
    name: z.string(),
    checkpoint: z.number(),
    lag: z.number(),
    deadLetters: z.number(),
    halted: z.number(),
    latestErrors: z.array(deadLetter),
  }),
);

describe('a bad message on the event stream never stops Runway (whole stack + runway admin)', () => {
  let s: TestStack;
  let store: EventStore;
  before(async () => {
    s = await startTestStack();
    store = s.env.newStore(integrationRegistry());
  });
  after(async () => {
    await s.stop();
  });

  const admin = (...args: string[]) =>
    run(process.execPath, [runwayCliPath, 'admin', 'projections', ...args], {
      env: { ...process.env, ...s.env.childEnv() },
    });

  it('dead-letters garbage and a commit failing its schema, keeps projecting, and shows them to the operator', async () => {
    const ws = s.workspaceId;
    const garbage = (
      await store.js.publish(
        store.subjectOf({ workspaceId: ws, type: 'workspace', id: 'garbage' }),
        new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]),
      )
    ).seq;
    const envelope = {
      v: 1,
      aggregate: { workspaceId: ws, type: 'workspace', id: ws },
      events: [
        {
          type: 'WorkspaceCreated',
          version: store.registry.versionOf('WorkspaceCreated'),
          data: { name: 42 },
        },
      ],
      meta: {
        commandId: 'forged-1',
        actor: 'test',
        correlationId: 'forged-1',
        time: new Date().toISOString(),
      },
    };
    const invalid = (
      await store.js.publish(
        store.subjectOf({ workspaceId: ws, type: 'workspace', id: 'invalid' }),
        JSON.stringify(envelope),
      )
    ).seq;

    // The read models keep up with what comes after.
    const created = await s.call('POST', '/api/v1/workspaces', { name: 'After the garbage' });
    assert.equal(created.status, 201, created.text);
    const id = z.object({ id: z.string() }).parse(created.json).id;
    assert.equal((await s.call('GET', `/api/v1/workspaces/${id}`)).status, 200);

    const status = await admin('status', '--json');
    assert.equal(status.code, 0, status.err);
    const rows = statusRows.parse(JSON.parse(status.out));
    const workspaces = rows.find((r) => r.name === 'workspaces');
    assert.ok(workspaces, status.out);
    assert.equal(workspaces.deadLetters, 2);
    assert.equal(workspaces.halted, 0);
    assert.deepEqual(
      workspaces.latestErrors.map((l) => l.seq).sort((a, b) => a - b),
      [garbage, invalid],
    );
    // Every projection passed over the garbage; only those reading WorkspaceCreated over the other.
    for (const r of rows) {
      assert.ok(r.checkpoint >= invalid, `${r.name} moved past the bad commits`);
      assert.ok(r.deadLetters >= 1, `${r.name} counted the garbage`);
    }

    const text = await admin('status');
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /dead_letters/);
    assert.match(text.out, /latest errors/);
    assert.match(text.out, /not JSON/);

    const listed = await admin('dead-letters', 'workspaces', '--json');
    assert.equal(listed.code, 0, listed.err);
    const letters = z.array(deadLetter).parse(JSON.parse(listed.out));
    assert.deepEqual(
      letters.map((l) => l.seq),
      [invalid, garbage].sort((a, b) => b - a),
    );
    const bySeq = new Map(letters.map((l) => [l.seq, l]));
    assert.match(bySeq.get(garbage)!.error, /not JSON/);
    assert.match(bySeq.get(invalid)!.error, /WorkspaceCreated/);
    assert.equal(bySeq.get(invalid)!.eventTypes, null); // published without Runway's headers
    const all = await admin('dead-letters');
    assert.equal(all.code, 0, all.err);
    assert.match(all.out, /workspaces/);
    assert.equal((await admin('dead-letters', 'Bad-Name')).code, 2);
  });
});
