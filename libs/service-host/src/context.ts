import type { Kysely } from 'kysely';
import type { RunwayConfig } from '#libs/config';
import type { EventStore } from '#libs/eventstore';
import type { NatsConnection } from '#libs/nats';

/** What every service gets: one validated config, a NATS connection, the event store, the database. */
export interface ServiceContext {
  config: RunwayConfig;
  nats: NatsConnection;
  store: EventStore;
  /**
   * Untyped at the edge: a service narrows it to its own tables ONCE, without a cast, with
   * `withTables<SvcTables>(ctx.db)` (#libs/database), and reads only those.
   */
  db: Kysely<unknown>;
  /** Resolves once this service's projections reached stream sequence `seq` (read-your-writes). */
  waitForProjections: (seq: number, timeoutMs?: number) => Promise<void>;
  /** Resolves once the projection `name` of any service, in any process, reached `seq` (read-your-writes across services). */
  waitForProjection: (name: string, seq: number, timeoutMs?: number) => Promise<void>;
}

/** Nest injection token for the ServiceContext. */
export const SERVICE_CONTEXT = Symbol('RUNWAY_SERVICE_CONTEXT');
/** Prefix every service adds to request/reply subjects (same as the event subject prefix). */
export function subjectFor(ctx: Pick<ServiceContext, 'config'>, subject: string): string {
  return ctx.config.events.subjectPrefix ? `${ctx.config.events.subjectPrefix}.${subject}` : subject;
}
