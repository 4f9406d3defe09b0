import { z } from 'zod';
import type { EventDefinition } from '#libs/events';
import { ConfigurationCreated } from './configuration.events.js';
import { DeploymentCreated } from './deployment.events.js';
import { JobCreated, JobDeleted, JobUpdated, RunRequested, ScheduledRunSkipped } from './job.events.js';
import {
  PipelineReported,
  RunAppReady,
  RunCancelled,
  RunCompleted,
  RunFailed,
  RunSkipped,
  RunStarted,
  RunStarting,
} from './run.events.js';
import { RunLogsSealed } from './runlog.events.js';
import { AggregateTypes } from './subjects.js';

/**
 * The public event catalogue: the integration events an outside subscriber may rely on (see
 * docs/events.md). Every other event in the stream (a service's private events, the keyring, the
 * deployment's file list parts, users, tokens, e-mail claims) is internal and may change at any time.
 *
 * Compatibility: an additive change (a new optional field, a new enum value documented as such)
 * keeps the version; anything else is a new version of the event with an upcaster from the old one,
 * and stored old versions stay readable. The checked-in schemas under docs/events/ are compared with
 * these by catalogue.spec.ts, so a change to a public event cannot slip through unnoticed.
 */
export interface PublicEvent {
  readonly definition: EventDefinition;
  /** The aggregate type the event is stored under (the subject's third token). */
  readonly aggregate: string;
  /** What the aggregate id is. */
  readonly aggregateId: string;
  /** One line: what it means. */
  readonly description: string;
}

const run = AggregateTypes.run;
const job = AggregateTypes.job;

export const PUBLIC_EVENTS: readonly PublicEvent[] = [
  {
    definition: JobCreated,
    aggregate: job,
    aggregateId: 'the job id',
    description: 'A job was created (its first version, or a job of a deleted one’s name created again).',
  },
  {
    definition: JobUpdated,
    aggregate: job,
    aggregateId: 'the job id',
    description:
      'A new version of a job: the whole spec and the names of the fields that changed (schedule changes: `schedule`, `timezone`, `active`, …).',
  },
  {
    definition: JobDeleted,
    aggregate: job,
    aggregateId: 'the job id',
    description: 'The job was deleted: it no longer fires or runs; its runs are kept.',
  },
  {
    definition: RunRequested,
    aggregate: job,
    aggregateId: 'the job id (the run id is in the data)',
    description: 'A run of a job was requested (manually, by the API or by the schedule).',
  },
  {
    definition: ScheduledRunSkipped,
    aggregate: job,
    aggregateId: 'the job id (the run id is in the data)',
    description:
      'A scheduled fire made no run (a run still active under the overlap policy, or nothing to run); shown as a skipped run.',
  },
  {
    definition: RunStarting,
    aggregate: run,
    aggregateId: 'the run id',
    description: 'A worker claimed the run and is preparing it.',
  },
  {
    definition: RunStarted,
    aggregate: run,
    aggregateId: 'the run id',
    description: 'The run’s process was spawned (an interactive run: its app answered).',
  },
  {
    definition: RunAppReady,
    aggregate: run,
    aggregateId: 'the run id',
    description:
      'An interactive run’s app answers: the worker endpoint (host, port) and base path a gateway proxies to (docs/interactive.md).',
  },
  {
    definition: RunCompleted,
    aggregate: run,
    aggregateId: 'the run id',
    description:
      'The run ended successfully (exit code 0), or its interactive app was stopped for being idle (`reason: idle`).',
  },
  {
    definition: RunFailed,
    aggregate: run,
    aggregateId: 'the run id',
    description:
      'The run ended in failure, with its reason (exit code, timeout, worker lost, …) and the last lines of stderr (known secrets masked).',
  },
  {
    definition: RunCancelled,
    aggregate: run,
    aggregateId: 'the run id',
    description: 'The run was cancelled (before it started, or its process was stopped).',
  },
  {
    definition: RunSkipped,
    aggregate: run,
    aggregateId: 'the run id',
    description: 'The run ends as skipped (it follows the job’s ScheduledRunSkipped), with the reason.',
  },
  {
    definition: PipelineReported,
    aggregate: run,
    aggregateId: 'the run id',
    description:
      'What dlt left after the run: per pipeline its destination, dataset, tables, loads and row counts.',
  },
  {
    definition: RunLogsSealed,
    aggregate: AggregateTypes.runlog,
    aggregateId: 'the run id',
    description: 'The run’s log is complete in the log stream (line count and bytes).',
  },
  {
    definition: DeploymentCreated,
    aggregate: AggregateTypes.deployment,
    aggregateId: 'the workspace id (one deployment aggregate per workspace)',
    description: 'A new deployment version (the workspace’s code) was created.',
  },
  {
    definition: ConfigurationCreated,
    aggregate: AggregateTypes.configuration,
    aggregateId: 'the workspace id (one configuration aggregate per workspace)',
    description:
      'A new configuration version (.dlt config and secrets) was created: file names, profiles and key names, never values.',
  },
];

const byType = new Map(PUBLIC_EVENTS.map((e) => [e.definition.type, e]));

export const PUBLIC_EVENT_TYPES: readonly string[] = PUBLIC_EVENTS.map((e) => e.definition.type);

export function isPublicEventType(type: string): boolean {
  return byType.has(type);
}

export function publicEvent(type: string): PublicEvent | undefined {
  return byType.get(type);
}

/** The aggregate types public events are stored under, sorted. */
export const PUBLIC_AGGREGATES: readonly string[] = [
  ...new Set(PUBLIC_EVENTS.map((e) => e.aggregate)),
].sort();

/**
 * The subjects a subscriber filters on: one per public aggregate type
 * (`<prefix.>evt.<workspace>.<aggregate>.<id>`). They also carry the aggregates' internal events,
 * which a subscriber skips by type.
 */
export function publicEventSubjects(subjectPrefix = ''): string[] {
  const p = subjectPrefix ? `${subjectPrefix}.` : '';
  return PUBLIC_AGGREGATES.map((a) => `${p}evt.*.${a}.*`);
}

/** The name of a public event's schema file under docs/events/. */
export function schemaFileName(e: PublicEvent): string {
  return `${e.definition.type}.v${e.definition.version}.schema.json`;
}

/**
 * The JSON Schema (2020-12) of a public event's `data`, from its zod schema. It describes the
 * payload as stored (zod's input side: fields with a default may be absent in older events; a
 * subscriber through `runway events subscribe` gets them filled in).
 */
export function publicEventJsonSchema(e: PublicEvent): Record<string, unknown> {
  const schema = z.toJSONSchema(e.definition.schema, { target: 'draft-2020-12', io: 'input' });
  const { $schema, ...rest } = schema;
  return {
    $schema,
    $id: `urn:runway:event:${e.definition.type}:v${e.definition.version}`,
    title: `${e.definition.type} v${e.definition.version}`,
    description: e.description,
    'x-runway-event': {
      type: e.definition.type,
      version: e.definition.version,
      aggregate: e.aggregate,
      subject: `evt.<workspace>.${e.aggregate}.<id>`,
    },
    ...rest,
  };
}

/** docs/events/catalogue.json: the index of the public events (read by the Python recipe). */
export function catalogueIndex(): Record<string, unknown> {
  return {
    description:
      'Runway public event catalogue (generated by `npm run events:catalogue`; see docs/events.md)',
    aggregates: PUBLIC_AGGREGATES,
    events: PUBLIC_EVENTS.map((e) => ({
      type: e.definition.type,
      version: e.definition.version,
      aggregate: e.aggregate,
      aggregateId: e.aggregateId,
      subject: `evt.<workspace>.${e.aggregate}.<id>`,
      description: e.description,
      schema: schemaFileName(e),
    })),
  };
}

/** The catalogue table of docs/events.md (between its `catalogue` markers). */
export function catalogueTable(): string {
  const rows = PUBLIC_EVENTS.map(
    (e) =>
      `| \`${e.definition.type}\` | ${e.definition.version} | \`${e.aggregate}\`: ${e.aggregateId} | ${e.description} | [schema](events/${schemaFileName(e)}) |`,
  );
  return [
    '| type | version | aggregate: id | meaning | data |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

export const CATALOGUE_START = '<!-- catalogue:start (generated by `npm run events:catalogue`) -->';
export const CATALOGUE_END = '<!-- catalogue:end -->';

/** Every generated file (path relative to the repository root → content). */
export function catalogueFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const e of PUBLIC_EVENTS) {
    files.set(`docs/events/${schemaFileName(e)}`, JSON.stringify(publicEventJsonSchema(e), null, 2) + '\n');
  }
  files.set('docs/events/catalogue.json', JSON.stringify(catalogueIndex(), null, 2) + '\n');
  return files;
}

/** docs/events.md with its catalogue table replaced by the code's. */
export function withCatalogueTable(markdown: string): string {
  const start = markdown.indexOf(CATALOGUE_START);
  const end = markdown.indexOf(CATALOGUE_END);
  if (start < 0 || end < start) throw new Error('docs/events.md: catalogue markers missing');
  return `${markdown.slice(0, start + CATALOGUE_START.length)}\n\n${catalogueTable()}\n\n${markdown.slice(end)}`;
}
