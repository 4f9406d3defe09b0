import { jetstreamManager, type StreamConfig } from '@nats-io/jetstream';
import type { NatsConnection } from '#libs/nats';
import { logsStreamName, logsSubjects, type LogsLocation } from './format.js';

export interface LogsRetention {
  /** Messages older than this are removed (ms). */
  maxAgeMs: number;
  /** Most bytes kept, oldest removed first; -1 = unlimited. */
  maxBytes: number;
  /** Replicas of the stream (RUNWAY_NATS_REPLICAS; default 1). */
  replicas?: number;
}

export const DEFAULT_RETENTION: LogsRetention = { maxAgeMs: 7 * 24 * 3600 * 1000, maxBytes: -1 };
const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;

/**
 * Creates the LOGS stream, or brings an existing one to this retention. Owned by the logs
 * service (it runs this at its start); workers and readers only use the stream.
 */
export async function ensureLogsStream(
  nc: NatsConnection,
  loc: LogsLocation,
  retention: LogsRetention = DEFAULT_RETENTION,
): Promise<string> {
  const jsm = await jetstreamManager(nc);
  const name = logsStreamName(loc);
  const wanted: Partial<StreamConfig> = {
    subjects: [logsSubjects(loc.subjectPrefix)],
    max_age: retention.maxAgeMs * 1_000_000,
    max_bytes: retention.maxBytes,
    duplicate_window: DUPLICATE_WINDOW_MS * 1_000_000,
    allow_direct: true,
    num_replicas: retention.replicas ?? 1,
  };
  try {
    const info = await jsm.streams.info(name);
    const c = info.config;
    if (
      c.max_age !== wanted.max_age ||
      c.max_bytes !== wanted.max_bytes ||
      c.duplicate_window !== wanted.duplicate_window ||
      !c.allow_direct ||
      c.num_replicas < (wanted.num_replicas ?? 1) ||
      c.subjects.join() !== wanted.subjects!.join()
    )
      // Replicas only go up here (see EventStore.ensureStream).
      await jsm.streams.update(name, {
        ...c,
        ...wanted,
        num_replicas: Math.max(c.num_replicas, wanted.num_replicas ?? 1),
      });
  } catch (err) {
    if (!/not found/i.test(String(err))) throw err;
    try {
      await jsm.streams.add({ name, ...wanted });
    } catch (e) {
      // Another process created it meanwhile.
      if (!/already in use|exists/i.test(String(e))) throw e;
    }
  }
  return name;
}
