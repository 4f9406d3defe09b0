// The gateway's `users` projection through projectionSpec (the runner's transaction path) against a
// real PostgreSQL with the gateway's migrations: nothing it is given can stop it on a unique index.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { projectionMigrations, type CheckpointTable } from '#libs/projections';
import { createTestEnvironment, projectionSpec, type TestEnvironment } from '#libs/testing';
import { gatewayMigrations, type GatewayTables } from '../../migrations/index.js';
import { usersProjection } from './users.projection.js';

type Db = Kysely<GatewayTables & CheckpointTable>;
const hash = 'a'.repeat(64);

describe('users projection (real Postgres)', () => {
  let env: TestEnvironment;
  let db: Db;
  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, gatewayMigrations]);
    db = env.newDb();
  });
  after(() => env.close());

  const userRef = (id: string) => ({ workspaceId: '_', type: 'user', id });
  const registered = (id: string, email: string) => ({
    aggregate: userRef(id),
    events: [{ type: 'UserRegistered', data: { userId: id, email, name: email, admin: false } }],
  });

  it('keeps going over a second user with a taken email and over replayed events', async () => {
    const spec = projectionSpec(db, usersProjection);
    const a = randomUUID();
    const b = randomUUID();
    const issued = {
      aggregate: userRef(a),
      events: [{ type: 'TokenIssued', data: { tokenId: 'tok11111', name: 't', hash, expiresAt: null } }],
    };
    // A store written before email claims may hold two users of one email: both are projected.
    await spec.given(registered(a, 'dup@example.com'), registered(b, 'dup@example.com'), issued);
    await spec.given(registered(a, 'dup@example.com'), issued); // the same events again
    await spec.given(
      { aggregate: userRef(a), events: [{ type: 'UserDisabled', data: {} }] },
      { aggregate: userRef(a), events: [{ type: 'TokenRevoked', data: { tokenId: 'tok11111' } }] },
    );
    const users = await db.selectFrom('users').selectAll().where('email', '=', 'dup@example.com').execute();
    assert.deepEqual(users.map((u) => u.id).sort(), [a, b].sort());
    assert.ok(users.find((u) => u.id === a)?.disabled_at instanceof Date);
    const token = await db
      .selectFrom('api_tokens')
      .selectAll()
      .where('id', '=', 'tok11111')
      .executeTakeFirst();
    assert.ok(token?.revoked_at instanceof Date);
    const checkpoint = await db
      .selectFrom('projection_checkpoints')
      .select('stream_seq')
      .where('name', '=', 'users')
      .executeTakeFirstOrThrow();
    assert.equal(Number(checkpoint.stream_seq), 7, 'every commit applied and checkpointed');
  });
});
