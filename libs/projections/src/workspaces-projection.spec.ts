// The gateway's `workspaces` projection, through projectionSpec (the runner's transaction path)
// against a real PostgreSQL with the gateway's own migrations.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { withTables } from '#libs/database';
import { createTestEnvironment, projectionSpec, untypedDb, type TestEnvironment } from '#libs/testing';
import { gatewayMigrations, type GatewayTables } from '../../../services/gateway/src/migrations/index.js';
import { workspacesProjection } from '../../../services/gateway/src/workspace/read-models/workspaces.projection.js';
import { projectionMigrations, type CheckpointTable } from './migrations.js';
import { readCheckpoint } from './runner.js';

type Db = Kysely<GatewayTables & CheckpointTable>;

describe('workspaces projection (real Postgres)', () => {
  let env: TestEnvironment;
  let db: Db;
  let spec: ReturnType<typeof projectionSpec>;
  const owner = randomUUID();
  const alice = randomUUID();
  const bob = randomUUID();
  const wsRef = (id: string) => ({ workspaceId: id, type: 'workspace', id });
  const created = (id: string, name: string, ownerId = owner) => ({
    aggregate: wsRef(id),
    events: [{ type: 'WorkspaceCreated', data: { workspaceId: id, name, ownerId } }],
    time: '2026-01-01T10:00:00.000Z',
  });
  const members = async (id: string) =>
    (
      await db
        .selectFrom('members')
        .select(['user_id', 'role'])
        .where('workspace_id', '=', id)
        .orderBy('role')
        .orderBy('user_id')
        .execute()
    ).map((m) => `${m.role}:${m.user_id}`);

  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, gatewayMigrations]);
    db = env.newDb();
  });
  after(() => env.close());
  beforeEach(async () => {
    // projectionSpec numbers its commits from 1: start each test from an empty read model.
    await sql`TRUNCATE workspaces, members`.execute(db);
    await db.deleteFrom('projection_checkpoints').execute();
    spec = projectionSpec(db, workspacesProjection);
  });

  it('creates the workspace with its owner as a member', async () => {
    const ws = randomUUID();
    await spec.given(created(ws, 'Data team'));
    const row = await db.selectFrom('workspaces').selectAll().where('id', '=', ws).executeTakeFirstOrThrow();
    assert.equal(row.name, 'Data team');
    assert.equal(row.owner_id, owner);
    assert.equal(row.created_at.toISOString(), '2026-01-01T10:00:00.000Z');
    assert.equal(row.updated_at.toISOString(), '2026-01-01T10:00:00.000Z');
    assert.deepEqual(await members(ws), [`owner:${owner}`]);
    assert.equal(await readCheckpoint(withTables<CheckpointTable>(untypedDb(db)), 'workspaces'), 1);
  });

  it('renames, keeping the creation time', async () => {
    const ws = randomUUID();
    await spec.given(created(ws, 'Old'), {
      aggregate: wsRef(ws),
      events: [{ type: 'WorkspaceRenamed', data: { name: 'New' } }],
      time: '2026-01-02T08:30:00.000Z',
    });
    const row = await db.selectFrom('workspaces').selectAll().where('id', '=', ws).executeTakeFirstOrThrow();
    assert.equal(row.name, 'New');
    assert.equal(row.created_at.toISOString(), '2026-01-01T10:00:00.000Z');
    assert.equal(row.updated_at.toISOString(), '2026-01-02T08:30:00.000Z');
  });

  it('adds members, changes a role and removes a member, also several events in one commit', async () => {
    const ws = randomUUID();
    await spec.given({
      aggregate: wsRef(ws),
      events: [
        { type: 'WorkspaceCreated', data: { workspaceId: ws, name: 'Team', ownerId: owner } },
        { type: 'MemberAdded', data: { userId: alice, role: 'viewer' } },
        { type: 'MemberAdded', data: { userId: bob, role: 'member' } },
      ],
    });
    assert.deepEqual(await members(ws), [`member:${bob}`, `owner:${owner}`, `viewer:${alice}`].sort());
    await spec.given(
      {
        aggregate: wsRef(ws),
        events: [{ type: 'MemberRoleChanged', data: { userId: alice, role: 'member' } }],
      },
      { aggregate: wsRef(ws), events: [{ type: 'MemberRemoved', data: { userId: bob } }] },
    );
    assert.deepEqual(await members(ws), [`member:${alice}`, `owner:${owner}`]);
    assert.equal(await readCheckpoint(withTables<CheckpointTable>(untypedDb(db)), 'workspaces'), 3);
  });

  it('keeps workspaces apart and ignores events it does not handle', async () => {
    const a = randomUUID();
    const b = randomUUID();
    await spec.given(
      created(a, 'A'),
      created(b, 'B', alice),
      { aggregate: wsRef(a), events: [{ type: 'MemberAdded', data: { userId: bob, role: 'viewer' } }] },
      // Another aggregate's event in the same log: only the checkpoint moves.
      {
        aggregate: { workspaceId: a, type: 'job', id: 'j1' },
        events: [{ type: 'JobCreated', data: { name: 'x' } }],
      },
    );
    assert.deepEqual(await members(a), [`owner:${owner}`, `viewer:${bob}`]);
    assert.deepEqual(await members(b), [`owner:${alice}`]);
    const names = await db.selectFrom('workspaces').select('name').orderBy('name').execute();
    assert.deepEqual(
      names.map((r) => r.name),
      ['A', 'B'],
    );
    assert.equal(await readCheckpoint(withTables<CheckpointTable>(untypedDb(db)), 'workspaces'), 4);
  });

  it('does not let a repeated WorkspaceCreated overwrite the workspace', async () => {
    const ws = randomUUID();
    await spec.given(created(ws, 'First'), {
      aggregate: wsRef(ws),
      events: [{ type: 'MemberAdded', data: { userId: alice, role: 'member' } }],
    });
    await spec.given(created(ws, 'Second'));
    const row = await db.selectFrom('workspaces').selectAll().where('id', '=', ws).executeTakeFirstOrThrow();
    assert.equal(row.name, 'First');
    assert.deepEqual(await members(ws), [`member:${alice}`, `owner:${owner}`]);
  });
});
