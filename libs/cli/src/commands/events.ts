import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
  type JsMsg,
} from '@nats-io/jetstream';
import type { Command } from 'commander';
import {
  catalogueIndex,
  isPublicEventType,
  PUBLIC_EVENTS,
  PUBLIC_EVENT_TYPES,
  publicEvent,
  publicEventSubjects,
} from '#libs/contracts';
import type { EventStore } from '#libs/eventstore';
import { parseFrom } from '../admin/events.js';
import { CliError, findInstance, withNats } from '../instance.js';

/** NATS consumer names of subscribers: prefixed, so a subscriber can never take a service's durable. */
export const SUBSCRIBER_PREFIX = 'subscriber-';
const DURABLE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const CONSUMER_NOT_FOUND = 10014;
const FETCH_BATCH = 100;
/** How long one pull waits for messages: also the longest a Ctrl-C waits for the pull to end. */
const FETCH_EXPIRES_MS = 1000;

interface SubscribeOptions {
  from?: string;
  type: string[];
  durable?: string;
}

/** `--type A --type B,C` → [A, B, C]. */
function collect(value: string, previous: string[]): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

/** The types asked for, all public; an internal or unknown one is refused (exit 2). */
export function checkTypes(types: readonly string[]): Set<string> {
  for (const t of types) {
    if (!isPublicEventType(t)) {
      throw new CliError(
        `--type ${t}: not a public event type (internal events are not part of the catalogue, see docs/events.md); ` +
          `public types: ${PUBLIC_EVENT_TYPES.join(', ')}`,
        2,
      );
    }
  }
  return new Set(types.length > 0 ? types : PUBLIC_EVENT_TYPES);
}

/** The consumer's start for a new durable (or the ephemeral one). */
function startOf(
  from: string | undefined,
): Pick<ConsumerConfig, 'deliver_policy' | 'opt_start_seq' | 'opt_start_time'> {
  if (from === undefined) return { deliver_policy: DeliverPolicy.All };
  const f = parseFrom(from);
  if (f.fromTime)
    return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: f.fromTime.toISOString() };
  return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: f.fromSeq ?? 1 };
}

/** Writes a chunk to stdout and resolves once it is handed to the OS (before the ack). */
function writeOut(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

/** The JSON lines of one stream message: its public events of the asked types (maybe none). */
function linesOf(store: EventStore, m: JsMsg, types: ReadonlySet<string>): string {
  let commit: ReturnType<EventStore['decodeMatching']>;
  try {
    commit = store.decodeMatching(m, types);
  } catch (err) {
    // Not acked: a re-run meets it again (nothing is skipped silently).
    throw new CliError(
      `stream message ${m.seq} (${m.subject}) cannot be decoded: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (!commit) return '';
  return commit.events
    .map(
      (e) =>
        JSON.stringify({
          type: e.type,
          version: publicEvent(e.type)?.definition.version ?? e.version,
          seq: e.seq,
          index: e.index,
          time: e.time,
          workspace: e.aggregate.workspaceId,
          aggregate: { type: e.aggregate.type, id: e.aggregate.id },
          correlationId: e.correlationId,
          ...(e.causationId !== undefined ? { causationId: e.causationId } : {}),
          data: e.data,
        }) + '\n',
    )
    .join('');
}

async function subscribe(opts: SubscribeOptions): Promise<void> {
  const types = checkTypes(opts.type);
  if (opts.durable !== undefined && !DURABLE_NAME.test(opts.durable))
    throw new CliError(`--durable ${opts.durable}: expected 1–64 characters of [A-Za-z0-9_-]`, 2);
  const start = startOf(opts.from);
  const instance = findInstance();
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await withNats(instance, async (nc, store) => {
      const stream = instance.config.events.stream;
      const jsm = await jetstreamManager(nc);
      const filter_subjects = publicEventSubjects(instance.config.events.subjectPrefix);
      const config: Partial<ConsumerConfig> = {
        ack_policy: AckPolicy.Explicit,
        ack_wait: 30_000_000_000,
        max_ack_pending: 1000,
        max_deliver: -1,
        filter_subjects,
        ...start,
      };
      let name: string;
      if (opts.durable !== undefined) {
        name = `${SUBSCRIBER_PREFIX}${opts.durable}`;
        let exists = true;
        try {
          const ci = await jsm.consumers.info(stream, name);
          if (opts.from !== undefined) {
            process.stderr.write(
              `runway: durable ${opts.durable} exists: resuming after stream sequence ${ci.ack_floor.stream_seq} (--from applies to a new durable only)\n`,
            );
          }
        } catch (err) {
          if (!(err instanceof JetStreamApiError && err.code === CONSUMER_NOT_FOUND)) throw err;
          exists = false;
        }
        // Durable: remembers its position until deleted (`nats consumer rm`), never expires by itself.
        if (!exists)
          await jsm.consumers.add(stream, { ...config, durable_name: name, inactive_threshold: 0 });
      } else {
        // No name: a consumer of this run only, removed when it ends (or a minute after a crash).
        const ci = await jsm.consumers.add(stream, { ...config, inactive_threshold: 60_000_000_000 });
        name = ci.name;
      }
      const consumer = await jetstream(nc).consumers.get(stream, name);
      try {
        while (!ac.signal.aborted) {
          const batch = await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
          // Every message of a pull is printed and acked before the next (and before a Ctrl-C ends
          // the run): a re-run of the durable continues exactly after the last printed event.
          for await (const m of batch) {
            const text = linesOf(store, m, types);
            if (text) await writeOut(text);
            await m.ackAck();
          }
        }
      } finally {
        if (opts.durable === undefined) await jsm.consumers.delete(stream, name).catch(() => undefined);
      }
    });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** `runway events subscribe`: the public event catalogue (docs/events.md), durably, one JSON line per event. */
export function registerEventsCommand(program: Command, json: () => boolean): void {
  const events = program.command('events').description('the public events (docs/events.md)');
  events
    .command('subscribe')
    .description(
      'print public events as JSON lines until interrupted; with --durable, resumes where it stopped',
    )
    .option(
      '--from <seq|time>',
      'start at a stream sequence or an ISO time (a new subscription only; default: the beginning)',
    )
    .option('--type <type>', 'only events of this public type (repeatable, or comma-separated)', collect, [])
    .option(
      '--durable <name>',
      'a named subscription that remembers its position (Ctrl-C and re-run continues)',
    )
    .action(async (opts: SubscribeOptions) => {
      await subscribe(opts);
    });
  events
    .command('types')
    .description('list the public event types and their versions')
    .action(async () => {
      if (json()) {
        await writeOut(JSON.stringify(catalogueIndex(), null, 2) + '\n');
        return;
      }
      const lines = PUBLIC_EVENTS.map((e) => `${e.definition.type} v${e.definition.version}`);
      await writeOut(lines.join('\n') + '\n');
    });
}
