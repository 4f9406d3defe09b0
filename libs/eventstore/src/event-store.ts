import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  JetStreamError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type DirectMsgRequest,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StoredMsg,
  type StreamConfig,
} from '@nats-io/jetstream';
import { randomUUID } from 'node:crypto';
import {
  aggregateRefSchema,
  AGGREGATE_TYPE,
  commitEnvelopeSchema,
  Headers,
  ID_TOKEN,
  type AggregateRef,
  type CommitEnvelope,
  type StoredCommitMeta,
  type CommitMeta,
  type StoredCommit,
  type StoredEvent,
} from './envelope.js';
import { mergeArchived } from './archive.js';
import { ConcurrencyError, EventSchemaError } from './errors.js';
import type { DomainEvent, EventRegistry } from './events.js';
import { injectTraceContext } from '#libs/observability';

export interface EventStoreOptions {
  /** Stream name (default EVENTS). Tests use a unique name per file. */
  stream?: string;
  /** Prefix of every subject; `''` in production, unique per test file so streams never overlap. */
  subjectPrefix?: string;
  /** Duplicate window for Nats-Msg-Id (default 10 minutes; must be at least that). */
  duplicateWindowMs?: number;
  /** Replicas (1 for a single server, 3 for a cluster). */
  replicas?: number;
}

export interface AppendResult {
  /** Stream sequence of the commit; the aggregate's new expected sequence. */
  seq: number;
  /** True when this command id had already been stored: nothing new was written. */
  duplicate: boolean;
}

export interface ReadResult {
  events: StoredEvent[];
  commits: StoredCommit[];
  /** Stream sequence of the aggregate's last commit, 0 if it has none. */
  lastSeq: number;
}

export interface ReplayOptions {
  fromSeq?: number;
  fromTime?: Date;
  /** Only this aggregate type. */
  aggregateType?: string;
  /** Only this workspace. */
  workspaceId?: string;
  /**
   * Only commits holding at least one event of these types, and only those events (the others are
   * neither decoded nor validated, so they may be types this registry does not know).
   */
  types?: readonly string[];
  /** Keep following new commits after the end (default false: stop at the end of the stream). */
  follow?: boolean;
  /** Do not upcast or validate payloads (operator tools that must show any event). */
  raw?: boolean;
  /**
   * Told each message that cannot be decoded (not JSON, not a commit envelope, a payload failing
   * its schema), which is then passed over. Without it, such a message ends the replay with the
   * error. A throw from it ends the replay too.
   */
  onUndecodable?: (m: { seq: number; subject: string; headers?: MsgHdrs }, err: unknown) => void;
  signal?: AbortSignal;
}

export interface DecodeOptions {
  /** Decode (upcast, validate) only the events of these types; leave the others out of the result. */
  types?: ReadonlySet<string> | readonly string[];
}

/** The event types of a stored commit, from its `Runway-Event-Types` header (undefined when absent). */
export function eventTypesOf(m: { headers?: MsgHdrs }): string[] | undefined {
  const h = m.headers?.get(Headers.EventTypes);
  return h ? h.split(',') : undefined;
}

/** True unless the commit's header proves that it holds none of `types` (no header: maybe). */
export function mayHold(m: { headers?: MsgHdrs }, types: ReadonlySet<string>): boolean {
  const listed = eventTypesOf(m);
  return listed === undefined || listed.some((t) => types.has(t));
}

const utf8 = new TextDecoder();

/**
 * Below this body size, parsing the body costs less than decoding the headers (about 300 bytes of
 * them on every commit): small commits are parsed directly, big ones checked against their header.
 */
const HEADER_CHECK_MIN_BYTES = 1024;

/** aggregateRefSchema's check without zod (subjectOf runs on every append). */
function isRef(a: unknown): a is AggregateRef {
  if (typeof a !== 'object' || a === null) return false;
  const r = a as Record<string, unknown>;
  return (
    typeof r.workspaceId === 'string' &&
    ID_TOKEN.test(r.workspaceId) &&
    typeof r.type === 'string' &&
    AGGREGATE_TYPE.test(r.type) &&
    typeof r.id === 'string' &&
    ID_TOKEN.test(r.id)
  );
}

/**
 * The same check as commitEnvelopeSchema, written out: decoding is the hot path of replays and
 * projections. When it fails the zod schema runs, to produce the error message.
 */
function isEnvelope(x: unknown): x is CommitEnvelope {
  if (typeof x !== 'object' || x === null) return false;
  const e = x as Record<string, unknown>;
  if (e.v !== 1 || !isRef(e.aggregate)) return false;
  const events = e.events;
  if (!Array.isArray(events) || events.length === 0) return false;
  for (const ev of events as unknown[]) {
    if (typeof ev !== 'object' || ev === null) return false;
    const { type, version } = ev as Record<string, unknown>;
    if (typeof type !== 'string' || type.length === 0) return false;
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) return false;
  }
  const meta = e.meta;
  if (typeof meta !== 'object' || meta === null) return false;
  const m = meta as Record<string, unknown>;
  return (
    typeof m.commandId === 'string' &&
    m.commandId.length > 0 &&
    typeof m.actor === 'string' &&
    typeof m.correlationId === 'string' &&
    (m.causationId === undefined || typeof m.causationId === 'string') &&
    typeof m.time === 'string'
  );
}

const WRONG_LAST_SEQUENCE = 10071;
const WRONG_LAST_SEQUENCE_UNKNOWN = 10164;

/** The status a direct get answers when no message of the subject exists from there on (404). */
function isNoMessage(err: Error): boolean {
  return err instanceof JetStreamError && 'code' in err && err.code === 404;
}
const MSG_ID_HEADER = 'Nats-Msg-Id';
/** How many commits after a stale expected sequence are searched for a retried command's first attempt. */
const DUPLICATE_SCAN = 256;
/** Commits per batched direct get when reading an aggregate, and the bytes after which the server ends a batch early. */
const READ_BATCH = 256;
const READ_BATCH_BYTES = 8 * 1024 * 1024;
const MIN_DUPLICATE_WINDOW_MS = 10 * 60_000;

export class EventStore {
  readonly stream: string;
  readonly prefix: string;
  readonly js: JetStreamClient;
  private jsmPromise: Promise<JetStreamManager> | undefined;

  constructor(
    readonly nc: NatsConnection,
    readonly registry: EventRegistry,
    private readonly opts: EventStoreOptions = {},
  ) {
    this.stream = opts.stream ?? 'EVENTS';
    this.prefix = opts.subjectPrefix ? `${opts.subjectPrefix}.` : '';
    this.js = jetstream(nc);
  }

  jsm(): Promise<JetStreamManager> {
    this.jsmPromise ??= jetstreamManager(this.nc);
    return this.jsmPromise;
  }

  /** The wildcard subject of every commit in this store. */
  get allSubjects(): string {
    return `${this.prefix}evt.>`;
  }

  subjectOf(ref: AggregateRef): string {
    const parsed = isRef(ref) ? ref : aggregateRefSchema.parse(ref); // zod only to explain a bad ref
    return `${this.prefix}evt.${parsed.workspaceId}.${parsed.type}.${parsed.id}`;
  }

  filterSubject(opts: { workspaceId?: string; aggregateType?: string } = {}): string {
    if (!opts.workspaceId && !opts.aggregateType) return this.allSubjects;
    return `${this.prefix}evt.${opts.workspaceId ?? '*'}.${opts.aggregateType ?? '*'}.*`;
  }

  /** Creates the stream, or updates it to the settings of DESIGN §3. Idempotent. */
  async ensureStream(): Promise<void> {
    const jsm = await this.jsm();
    const duplicateWindowMs = Math.max(
      this.opts.duplicateWindowMs ?? MIN_DUPLICATE_WINDOW_MS,
      MIN_DUPLICATE_WINDOW_MS,
    );
    const config: Partial<StreamConfig> & { name: string } = {
      name: this.stream,
      subjects: [this.allSubjects],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: 0,
      max_msgs: -1,
      max_bytes: -1,
      max_msgs_per_subject: -1,
      deny_delete: true,
      // Purge by subject is how finished aggregates leave for the archive (archive.ts); a stream
      // made with deny_purge keeps it (nats-server never lets it go) and cannot be archived.
      deny_purge: false,
      allow_direct: true,
      duplicate_window: duplicateWindowMs * 1_000_000,
      num_replicas: this.opts.replicas ?? 1,
    };
    try {
      const info = await jsm.streams.info(this.stream);
      const c = info.config;
      const same =
        c.subjects?.length === 1 &&
        c.subjects[0] === this.allSubjects &&
        c.deny_delete &&
        c.allow_direct &&
        c.duplicate_window === config.duplicate_window &&
        c.num_replicas >= (config.num_replicas ?? 1);
      // Replicas are raised (RUNWAY_NATS_REPLICAS went up), never lowered by a process that was
      // started without the setting: lowering them is an operator's decision (`nats stream edit`).
      // deny_purge stays as it is: the server refuses to lift it from an existing stream.
      if (!same)
        await jsm.streams.update(this.stream, {
          ...c,
          ...config,
          deny_purge: c.deny_purge,
          num_replicas: Math.max(c.num_replicas, config.num_replicas ?? 1),
        } as StreamConfig);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === 10059) {
        await jsm.streams.add(config);
      } else throw err;
    }
  }

  /**
   * Appends the events of one decision as ONE message, on condition that the aggregate's last
   * commit is still `expectedSeq` (0 for a new aggregate).
   */
  async append(
    ref: AggregateRef,
    expectedSeq: number,
    events: readonly DomainEvent[],
    meta: CommitMeta,
  ): Promise<AppendResult> {
    if (events.length === 0) throw new Error('append needs at least one event');
    const subject = this.subjectOf(ref);
    const time = new Date().toISOString();
    const correlationId = meta.correlationId ?? meta.commandId;
    const types: string[] = [];
    const versions: number[] = [];
    const stored = events.map((e) => {
      const version = this.registry.versionOf(e.type);
      types.push(e.type);
      versions.push(version);
      return { type: e.type, version, data: this.registry.validate(e) };
    });
    const envelope: CommitEnvelope = {
      v: 1,
      aggregate: { workspaceId: ref.workspaceId, type: ref.type, id: ref.id }, // not the caller's extras
      events: stored,
      meta: {
        commandId: meta.commandId,
        actor: meta.actor,
        correlationId,
        causationId: meta.causationId,
        time,
      },
    };
    // A fresh header set: append, which skips the lookup-and-delete of set.
    const h = natsHeaders();
    h.append(Headers.EventTypes, types.join(','));
    h.append(Headers.SchemaVersions, versions.join(','));
    h.append(Headers.CorrelationId, correlationId);
    if (meta.causationId) h.append(Headers.CausationId, meta.causationId);
    h.append(Headers.Actor, meta.actor);
    h.append(Headers.Time, time);
    h.append(Headers.Aggregate, `${ref.type}/${ref.id}`);
    // The trace of the request that caused this commit goes on in its reactions (never in the payload).
    injectTraceContext({ set: (k, v) => h.append(k, v) });
    // Per aggregate: a command id reused on another aggregate is a different write, not a duplicate.
    const msgID = `${ref.workspaceId}:${ref.type}:${ref.id}:${meta.commandId}`;
    try {
      const ack = await this.js.publish(subject, JSON.stringify(envelope), {
        msgID,
        expect: { lastSubjectSequence: expectedSeq, streamName: this.stream },
        headers: h,
        timeout: 10_000,
      });
      return { seq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      // 10164 (R3): the leader does not know the subject's last sequence yet (a proposal on it is
      // in flight), seen under 64 appends in flight on a 3-node cluster: a conflict like 10071.
      if (
        err instanceof JetStreamApiError &&
        (err.code === WRONG_LAST_SEQUENCE || err.code === WRONG_LAST_SEQUENCE_UNKNOWN)
      ) {
        // nats-server ≥ 2.10 checks the expected sequence before the duplicate window: a retried
        // command whose first attempt was stored (and moved the aggregate on) is refused as a
        // conflict. It is a duplicate when one of the commits after `expectedSeq` carries its id.
        const original = await this.findCommitById(subject, expectedSeq, msgID);
        if (original !== null) return { seq: original, duplicate: true };
        throw new ConcurrencyError(subject, expectedSeq, err);
      }
      throw err;
    }
  }

  /**
   * The stream sequence of the commit on `subject` after `afterSeq` whose Nats-Msg-Id is `msgID`,
   * looking at most DUPLICATE_SCAN commits ahead (a retry comes within a few commits of its first
   * attempt); null when there is none.
   */
  private async findCommitById(subject: string, afterSeq: number, msgID: string): Promise<number | null> {
    const after = await this.directBatch(subject, afterSeq + 1, DUPLICATE_SCAN);
    return after.find((m) => m.header.get(MSG_ID_HEADER) === msgID)?.seq ?? null;
  }

  /** The stream sequence of the aggregate's last commit (0 if none), via direct get. */
  async lastSequenceOf(ref: AggregateRef): Promise<number> {
    return (await this.directGet({ last_by_subj: this.subjectOf(ref) }))?.seq ?? 0;
  }

  /** A direct get of one stream message; null when there is none. */
  private async directGet(query: DirectMsgRequest): Promise<StoredMsg | null> {
    const jsm = await this.jsm();
    try {
      return await jsm.direct.getMessage(this.stream, query);
    } catch (err) {
      if (err instanceof Error && /no message found|not found/i.test(err.message)) return null;
      throw err;
    }
  }

  /**
   * Up to `batch` messages of `subject` from stream sequence `fromSeq` on, in order, in ONE request
   * (a batched direct get, nats-server ≥ 2.11); fewer when the server stops at READ_BATCH_BYTES.
   * Each message's `pending` is the number of the subject's messages after it.
   */
  private async directBatch(subject: string, fromSeq: number, batch: number): Promise<StoredMsg[]> {
    const jsm = await this.jsm();
    return new Promise((resolve, reject) => {
      const out: StoredMsg[] = [];
      // With a callback the client drops its reply subscription as soon as the batch ends.
      jsm.direct
        .getBatch(this.stream, {
          seq: Math.max(1, fromSeq),
          next_by_subj: subject,
          batch,
          max_bytes: READ_BATCH_BYTES,
          callback: (done, m) => {
            if (!done) out.push(m);
            else if (!done.err || isNoMessage(done.err)) resolve(out);
            else reject(done.err);
          },
        })
        .catch(reject);
    });
  }

  /** One commit by its stream sequence (direct get); null if there is none. */
  async readCommit(seq: number): Promise<StoredCommit | null> {
    const msg = await this.directGet({ seq });
    return msg ? this.decode(msg) : null;
  }

  /**
   * The aggregate's commits after `afterSeq`, in order (one batched direct get): for a cached state
   * a few commits behind. null when more than `max` commits are behind (read it whole instead).
   */
  async readAfter(ref: AggregateRef, afterSeq: number, max = 32): Promise<ReadResult | null> {
    const msgs = await this.directBatch(this.subjectOf(ref), afterSeq + 1, max + 1);
    if (msgs.length > max || (msgs.at(-1)?.pending ?? 0) > 0) return null;
    const commits = msgs.map((m) => this.decode(m));
    return { commits, events: commits.flatMap((c) => c.events), lastSeq: msgs.at(-1)?.seq ?? afterSeq };
  }

  /**
   * Loads every event of one aggregate (after `afterSeq`: a snapshot's position), in order, through
   * batched direct gets on its subject: one request per READ_BATCH commits, no consumer
   * (nats-server ≥ 2.11). `lastSeq` is the last commit read (`afterSeq` when there is none after
   * it): the server reports none after it (`pending` 0) when the read ended.
   */
  async read(ref: AggregateRef, afterSeq = 0): Promise<ReadResult> {
    const subject = this.subjectOf(ref);
    const commits: StoredCommit[] = [];
    let from = afterSeq + 1;
    for (;;) {
      const msgs = await this.directBatch(subject, from, READ_BATCH);
      for (const m of msgs) commits.push(this.decode(m));
      const last = msgs.at(-1);
      if (!last || last.pending <= 0) break;
      from = last.seq + 1;
    }
    return { commits, events: commits.flatMap((c) => c.events), lastSeq: commits.at(-1)?.seq ?? afterSeq };
  }

  /**
   * Replays commits from a sequence or time, optionally filtered, optionally following, with the
   * commits moved to the archive (archive.ts) merged back in at their sequences.
   */
  replay(opts: ReplayOptions = {}): AsyncGenerator<StoredCommit> {
    return mergeArchived(this, this.replayStream(opts), opts);
  }

  /** replay of what is in the stream itself (no archived commits). */
  async *replayStream(opts: ReplayOptions = {}): AsyncGenerator<StoredCommit> {
    const jsm = await this.jsm();
    const info = await jsm.streams.info(this.stream);
    const endSeq = info.state.last_seq;
    if (!opts.follow && (endSeq === 0 || (opts.fromSeq !== undefined && opts.fromSeq > endSeq))) return;
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: this.filterSubject(opts),
      ...(opts.fromSeq !== undefined
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, opts.fromSeq) }
        : opts.fromTime
          ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: opts.fromTime.toISOString() }
          : { deliver_policy: DeliverPolicy.All }),
    });
    try {
      if (!opts.follow) {
        // Stop at the end of what exists now; a filtered consumer may have nothing to deliver.
        const ci = await consumer.info();
        if (ci.num_pending === 0) return;
      }
      const types = opts.types ? new Set(opts.types) : undefined;
      const messages = await consumer.consume({ max_messages: 1024 });
      const onAbort = () => messages.stop();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const m of messages) {
          let commit: StoredCommit | undefined;
          try {
            if (!types) commit = opts.raw ? this.decodeRaw(m) : this.decode(m);
            else commit = this.decodeMatching(m, types, opts.raw);
          } catch (err) {
            if (!opts.onUndecodable) throw err;
            opts.onUndecodable(m, err);
          }
          if (commit) yield commit;
          if (!opts.follow && (m.seq >= endSeq || m.info.pending === 0)) break;
        }
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
        messages.stop();
      }
    } finally {
      void consumer.delete().catch(() => undefined);
    }
  }

  /** Last sequence of the whole stream. */
  async lastSequence(): Promise<number> {
    const jsm = await this.jsm();
    const info = await jsm.streams.info(this.stream);
    return info.state.last_seq;
  }

  /**
   * Decodes and validates one stream message (upcasting old event versions). With `types`, only
   * the events of those types are decoded and returned (each keeps its index in the commit).
   */
  decode(m: Pick<JsMsg, 'seq' | 'subject' | 'data'>, opts: DecodeOptions = {}): StoredCommit {
    return this.decodeWith(m, opts, (type, version, data) => this.registry.decode(type, version, data));
  }

  /**
   * The commit with only its events of `types` (decoded and validated, or as stored with `raw`), or
   * undefined when it holds none of them. Takes the cheaper way to find out: a big commit is first
   * checked against its `Runway-Event-Types` header, so its body is parsed only when it matters.
   */
  decodeMatching(
    m: Pick<JsMsg, 'seq' | 'subject' | 'data' | 'headers'>,
    types: ReadonlySet<string>,
    raw = false,
  ): StoredCommit | undefined {
    if (m.data.length >= HEADER_CHECK_MIN_BYTES && !mayHold(m, types)) return undefined;
    const commit = raw ? this.decodeRaw(m, { types }) : this.decode(m, { types });
    return commit.events.length > 0 ? commit : undefined;
  }

  /** Decodes the envelope only: payloads as stored, whatever their type or version. */
  decodeRaw(m: Pick<JsMsg, 'seq' | 'subject' | 'data'>, opts: DecodeOptions = {}): StoredCommit {
    return this.decodeWith(m, opts, (_type, _version, data) => data);
  }

  private decodeWith(
    m: Pick<JsMsg, 'seq' | 'subject' | 'data'>,
    opts: DecodeOptions,
    payload: (type: string, version: number, data: unknown) => unknown,
  ): StoredCommit {
    let raw: unknown;
    try {
      raw = JSON.parse(utf8.decode(m.data));
    } catch {
      throw new EventSchemaError('(commit)', `message ${m.seq} is not JSON`);
    }
    if (!isEnvelope(raw)) {
      const parsed = commitEnvelopeSchema.safeParse(raw);
      throw new EventSchemaError(
        '(commit)',
        `message ${m.seq}: ${parsed.success ? 'invalid envelope' : parsed.error.message}`,
      );
    }
    const a = raw.aggregate;
    const aggregate: AggregateRef = { workspaceId: a.workspaceId, type: a.type, id: a.id };
    const rm = raw.meta;
    const meta: StoredCommitMeta = {
      commandId: rm.commandId,
      actor: rm.actor,
      correlationId: rm.correlationId,
      ...(rm.causationId !== undefined ? { causationId: rm.causationId } : {}),
      time: rm.time,
    };
    const only =
      opts.types === undefined ? undefined : opts.types instanceof Set ? opts.types : new Set(opts.types);
    const events: StoredEvent[] = [];
    for (let index = 0; index < raw.events.length; index++) {
      const e = raw.events[index]!;
      if (only && !only.has(e.type)) continue;
      events.push({
        type: e.type,
        data: payload(e.type, e.version, e.data),
        version: e.version,
        seq: m.seq,
        index,
        aggregate,
        time: meta.time,
        actor: meta.actor,
        commandId: meta.commandId,
        correlationId: meta.correlationId,
        causationId: meta.causationId,
      });
    }
    return { seq: m.seq, subject: m.subject, aggregate, meta, events };
  }

  /** A fresh id for a command that came without one. */
  static newCommandId(): string {
    return randomUUID();
  }
}

export { AckPolicy };
