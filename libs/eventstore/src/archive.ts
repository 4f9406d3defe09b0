import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import {
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  StoreCompression,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { AggregateRef, StoredCommit } from './envelope.js';
import type { EventStore, ReplayOptions } from './event-store.js';

/**
 * The archive of an event stream: where the commits of finished aggregates (a run and its log
 * record, once the run ended long enough ago) go so that their subjects can leave the event stream.
 *
 * Why: every subject of a stream costs the nats-server memory for as long as it holds a message
 * (measured by `npm run bench -- scale`: a few hundred bytes per subject on every replica, and
 * seconds of start-up per million subjects), and a run makes two subjects (`run`, `runlog`) that
 * would otherwise stay forever. The archive stream holds the same commits, byte for byte with their
 * headers, on FEW subjects: `<prefix>arc.<bucket>.<aggregate type>`, bucket = original sequence /
 * ARCHIVE_BUCKET, so its index stays small (an entry per type archived per 4,096 sequences of
 * history), and a replay of other aggregate types (a job prewarm) does not read the archive.
 *
 * Nothing is lost for readers of the log: `EventStore.replay` (and so projection rebuilds, the
 * admin replay and tail) merges the archived commits back at their original sequences, so a
 * rebuild sees exactly the log it would have seen before archiving. Reading one archived
 * aggregate (`EventStore.read`) does not: archive only aggregates no command will touch again.
 *
 * The archive stream is itself deny_delete/deny_purge. The event stream must allow purge for the
 * archiver (streams created by this version do; one created with deny_purge can never drop it,
 * nats-server refuses: `archive` then fails with ArchiveUnavailableError).
 */

/** Original sequences per archive subject. */
export const ARCHIVE_BUCKET = 4096;

export const ArchiveHeaders = {
  /** The commit's stream sequence in the event stream. */
  Seq: 'Runway-Archived-Seq',
  /** The commit's subject in the event stream. */
  Subject: 'Runway-Archived-Subject',
  /** Its Nats-Msg-Id there. */
  MsgId: 'Runway-Archived-Msg-Id',
} as const;

export class ArchiveUnavailableError extends Error {
  constructor(stream: string) {
    super(
      `stream ${stream} was created with deny_purge, which nats-server never lets go: its subjects ` +
        'cannot be archived (see docs/scale.md#archiving-finished-runs)',
    );
    this.name = 'ArchiveUnavailableError';
  }
}

export interface ArchiveResult {
  /** Aggregates whose subjects left the event stream. */
  aggregates: number;
  /** Commits copied into the archive (and purged from the event stream). */
  commits: number;
  /** Aggregates that had no commit (already archived, or never written). */
  empty: number;
}

/** A stored message as the decoders take it. */
interface RawCommit {
  seq: number;
  subject: string;
  data: Uint8Array;
  headers: MsgHdrs | undefined;
}

/** The archive is written without message ids: the shortest window the server takes. */
const DUPLICATE_WINDOW_NS = 1e9;
/** Headers of the original message not copied: the server's own, and the publish conditions. */
const NOT_COPIED = /^Nats-/i;

export class EventArchive {
  constructor(private readonly store: EventStore) {}

  /** The archive stream of the store's stream: `<stream>_ARCHIVE`. */
  get stream(): string {
    return `${this.store.stream}_ARCHIVE`;
  }

  get allSubjects(): string {
    return `${this.store.prefix}arc.>`;
  }

  subjectOfSeq(seq: number, aggregateType: string): string {
    return `${this.store.prefix}arc.${Math.floor(seq / ARCHIVE_BUCKET)}.${aggregateType}`;
  }

  /** Creates the archive stream (replicas as the event stream's). Idempotent. */
  async ensureStream(): Promise<void> {
    const jsm = await this.store.jsm();
    const events = await jsm.streams.info(this.store.stream);
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
      deny_purge: true,
      compression: StoreCompression.S2,
      duplicate_window: DUPLICATE_WINDOW_NS,
      num_replicas: events.config.num_replicas,
    };
    try {
      await jsm.streams.info(this.stream);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === 10059) await jsm.streams.add(config);
      else throw err;
    }
  }

  /**
   * Moves the commits of these aggregates into the archive, then purges their subjects from the
   * event stream: copies every commit (awaiting each acknowledgement), then purges the subject up to
   * and including the last commit copied. A crash in between leaves the subject in place, and the
   * next attempt copies it again (replay passes over the second copy of a sequence). A commit
   * appended after the copy stays.
   */
  async archive(refs: readonly AggregateRef[], concurrency = 16): Promise<ArchiveResult> {
    const jsm = await this.store.jsm();
    const info = await jsm.streams.info(this.store.stream);
    if (info.config.deny_purge) throw new ArchiveUnavailableError(this.store.stream);
    await this.ensureStream();
    const result: ArchiveResult = { aggregates: 0, commits: 0, empty: 0 };
    let next = 0;
    const one = async (ref: AggregateRef) => {
      const subject = this.store.subjectOf(ref);
      const messages = await this.readSubject(subject);
      if (messages.length === 0) {
        result.empty++;
        return;
      }
      await Promise.all(messages.map((m) => this.copy(m)));
      const last = messages[messages.length - 1]!.seq;
      await jsm.streams.purge(this.store.stream, { filter: subject, seq: last + 1 });
      result.aggregates++;
      result.commits += messages.length;
    };
    // A few aggregates at a time: each is a handful of round trips.
    await Promise.all(
      Array.from({ length: Math.min(concurrency, refs.length) }, async () => {
        while (next < refs.length) await one(refs[next++]!);
      }),
    );
    return result;
  }

  /**
   * One commit into the archive. Without a Nats-Msg-Id: the archive's duplicate window would hold
   * one id per archived commit for its whole span (measured: ~330 bytes each), and a retry after a
   * crash comes an archive pass later, past any window anyway. A second copy of a sequence is
   * dropped when read (readBucket).
   */
  private copy(m: RawCommit) {
    const h = natsHeaders();
    for (const [k, vs] of m.headers ?? []) {
      if (NOT_COPIED.test(k)) continue;
      for (const v of vs) h.append(k, v);
    }
    h.set(ArchiveHeaders.Seq, String(m.seq));
    h.set(ArchiveHeaders.Subject, m.subject);
    const msgId = m.headers?.get('Nats-Msg-Id');
    if (msgId) h.set(ArchiveHeaders.MsgId, msgId);
    const { type } = this.refOfSubject(m.subject);
    return this.store.js.publish(this.subjectOfSeq(m.seq, type), m.data, { headers: h, timeout: 10_000 });
  }

  /** Every message on one subject of the event stream, in order, with its headers (direct gets). */
  private async readSubject(subject: string): Promise<RawCommit[]> {
    const jsm = await this.store.jsm();
    const out: RawCommit[] = [];
    let cursor = 0;
    for (;;) {
      let m;
      try {
        m = await jsm.direct.getMessage(this.store.stream, { seq: cursor + 1, next_by_subj: subject });
      } catch (err) {
        if (err instanceof Error && /no message found|not found/i.test(err.message)) break;
        throw err;
      }
      if (!m) break;
      out.push({ seq: m.seq, subject: m.subject, data: m.data, headers: m.header });
      cursor = m.seq;
    }
    return out;
  }

  /** The aggregate of an event-stream subject `<prefix>evt.<ws>.<type>.<id>`. */
  private refOfSubject(subject: string): AggregateRef {
    const [workspaceId, type, id] = subject.slice(this.store.prefix.length + 'evt.'.length).split('.');
    return { workspaceId: workspaceId ?? '', type: type ?? '', id: id ?? '' };
  }

  /** The archive's buckets in order, of one aggregate type or all (none when there is no archive stream). */
  async buckets(aggregateType?: string): Promise<number[]> {
    const jsm = await this.store.jsm();
    let subjects: Record<string, number> | undefined;
    try {
      const info = await jsm.streams.info(this.stream, { subjects_filter: this.allSubjects });
      subjects = info.state.subjects;
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === 10059) return [];
      throw err;
    }
    const head = `${this.store.prefix}arc.`;
    const found = new Set<number>();
    for (const s of Object.keys(subjects ?? {})) {
      const [bucket, type] = s.slice(head.length).split('.');
      const n = Number(bucket);
      if (Number.isInteger(n) && n >= 0 && (!aggregateType || type === aggregateType)) found.add(n);
    }
    return [...found].sort((a, b) => a - b);
  }

  /** The archived commits of one bucket as originally stored, by original sequence, duplicates dropped. */
  async readBucket(bucket: number, aggregateType?: string): Promise<RawCommit[]> {
    const subject = `${this.store.prefix}arc.${bucket}.${aggregateType ?? '*'}`;
    const consumer = await this.store.js.consumers.get(this.stream, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.All,
    });
    const out: RawCommit[] = [];
    try {
      const pending = (await consumer.info()).num_pending;
      if (pending === 0) return [];
      const messages = await consumer.consume({ max_messages: 1024 });
      try {
        for await (const m of messages) {
          const seq = Number(m.headers?.get(ArchiveHeaders.Seq));
          const original = m.headers?.get(ArchiveHeaders.Subject);
          if (Number.isInteger(seq) && seq > 0 && original) {
            out.push({ seq, subject: original, data: m.data, headers: m.headers });
          }
          if (m.info.pending === 0) break;
        }
      } finally {
        messages.stop();
      }
    } finally {
      void consumer.delete().catch(() => undefined);
    }
    out.sort((a, b) => a.seq - b.seq);
    return out.filter((m, i) => i === 0 || out[i - 1]!.seq !== m.seq);
  }
}

/**
 * `live` (the event stream's replay, in sequence order) with the archived commits that match `opts`
 * merged in at their original sequences. Buckets are read one at a time as the replay reaches them.
 */
export async function* mergeArchived(
  store: EventStore,
  live: AsyncGenerator<StoredCommit>,
  opts: ReplayOptions,
): AsyncGenerator<StoredCommit> {
  const archive = new EventArchive(store);
  const fromSeq = opts.fromSeq ?? 1;
  const buckets = (await archive.buckets(opts.aggregateType)).filter(
    (b) => (b + 1) * ARCHIVE_BUCKET > fromSeq,
  );
  if (buckets.length === 0) {
    yield* live;
    return;
  }
  const types = opts.types ? new Set(opts.types) : undefined;
  const head = `${store.prefix}evt.`;
  const matches = (m: RawCommit) => {
    if (m.seq < fromSeq) return false;
    if (!opts.workspaceId && !opts.aggregateType) return true;
    const [ws, type] = m.subject.slice(head.length).split('.');
    return (
      (!opts.workspaceId || ws === opts.workspaceId) && (!opts.aggregateType || type === opts.aggregateType)
    );
  };
  const decode = (m: RawCommit): StoredCommit | undefined => {
    try {
      const c = types
        ? store.decodeMatching(m, types, opts.raw)
        : opts.raw
          ? store.decodeRaw(m)
          : store.decode(m);
      if (c && opts.fromTime && new Date(c.meta.time) < opts.fromTime) return undefined;
      return c;
    } catch (err) {
      if (!opts.onUndecodable) throw err;
      opts.onUndecodable(m, err);
      return undefined;
    }
  };
  let pending: RawCommit[] = [];
  let at = 0;
  let next = 0;
  /** Every archived commit below `seq` not yielded yet, loading the buckets that may hold some. */
  async function* below(seq: number): AsyncGenerator<StoredCommit> {
    for (;;) {
      while (at < pending.length && pending[at]!.seq < seq) {
        const c = decode(pending[at++]!);
        if (c) yield c;
      }
      if (at < pending.length) return; // the next archived commit is past seq
      if (next >= buckets.length || buckets[next]! * ARCHIVE_BUCKET >= seq) return;
      pending = (await archive.readBucket(buckets[next++]!, opts.aggregateType)).filter(matches);
      at = 0;
    }
  }
  for await (const c of live) {
    yield* below(c.seq);
    yield c;
  }
  if (!opts.follow && !opts.signal?.aborted) yield* below(Number.MAX_SAFE_INTEGER);
}
