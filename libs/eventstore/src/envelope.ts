import { z } from 'zod';

/** What a workspace id or aggregate id may hold (one subject token). */
export const ID_TOKEN = /^[A-Za-z0-9_-]+$/;
/** What an aggregate type may hold. */
export const AGGREGATE_TYPE = /^[a-z][a-z0-9_-]*$/;
const token = ID_TOKEN;

/** Identifies one aggregate instance; maps to exactly one subject. */
export const aggregateRefSchema = z.object({
  workspaceId: z.string().regex(token, 'workspace id must be [A-Za-z0-9_-]+'),
  type: z.string().regex(AGGREGATE_TYPE, 'aggregate type must be lower case [a-z0-9_-]'),
  id: z.string().regex(token, 'aggregate id must be [A-Za-z0-9_-]+'),
});
export type AggregateRef = z.infer<typeof aggregateRefSchema>;

/** Workspace id used for aggregates that belong to no workspace (users, the system). */
export const GLOBAL_WORKSPACE = '_';

export interface CommitMeta {
  /** Unique id of the command; becomes Nats-Msg-Id, so a retried command is stored once. */
  commandId: string;
  actor: string;
  correlationId?: string;
  causationId?: string;
}

/** What one message in the EVENTS stream holds: all events of one decision, in order. */
export const commitEnvelopeSchema = z.object({
  v: z.literal(1),
  aggregate: aggregateRefSchema,
  events: z
    .array(z.object({ type: z.string().min(1), version: z.number().int().min(1), data: z.unknown() }))
    .min(1),
  meta: z.object({
    commandId: z.string().min(1),
    actor: z.string(),
    correlationId: z.string(),
    causationId: z.string().optional(),
    time: z.string(),
  }),
});
export type CommitEnvelope = z.infer<typeof commitEnvelopeSchema>;

export const Headers = {
  MsgId: 'Nats-Msg-Id',
  EventTypes: 'Runway-Event-Types',
  SchemaVersions: 'Runway-Schema-Versions',
  CorrelationId: 'Runway-Correlation-Id',
  CausationId: 'Runway-Causation-Id',
  Actor: 'Runway-Actor',
  Time: 'Runway-Time',
  Aggregate: 'Runway-Aggregate',
} as const;

/** One decoded event with where it was stored. */
export interface StoredEvent<E extends { type: string; data: unknown } = { type: string; data: unknown }> {
  type: E['type'];
  data: E['data'];
  /** Stream sequence of the commit message that holds it. */
  seq: number;
  /** Position inside its commit. */
  index: number;
  /** Schema version as stored (before upcasting). */
  version?: number;
  aggregate: AggregateRef;
  time: string;
  actor: string;
  commandId: string;
  correlationId: string;
  causationId?: string;
}

export type StoredCommitMeta = CommitEnvelope['meta'];

/** A decoded commit: one stream message. */
export interface StoredCommit {
  seq: number;
  subject: string;
  aggregate: AggregateRef;
  meta: CommitEnvelope['meta'];
  events: StoredEvent[];
}
