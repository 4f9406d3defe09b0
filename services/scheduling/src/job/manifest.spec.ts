import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobManifest } from '#libs/contracts';
import { dueFires, isFireTime, nextFire, prevFire } from '../scheduler/cron.js';
import {
  croniterToRunway,
  matchSelectors,
  parseTrigger,
  periodSeconds,
  pickTrigger,
  syntheticTriggers,
} from './manifest.js';
import { refreshCascadeTargets } from './refresh-cascade.js';

const m = (jobRef: string, over: Partial<JobManifest> = {}): JobManifest => ({
  jobRef,
  engineVersion: 1,
  definition: {},
  definitionHash: '',
  deploymentModule: '__deployment__',
  triggers: [],
  defaultTrigger: null,
  launcher: 'dlt._workspace.deployment.launchers.job',
  module: 'm',
  function: null,
  jobType: 'batch',
  interface: null,
  interval: null,
  freshness: [],
  refreshPropagation: 'auto',
  externalSchedulers: false,
  tags: [],
  pipelineName: null,
  manual: true,
  archived: false,
  ...over,
});

describe('manifest triggers, selectors, time rules and the refresh cascade', () => {
  it('parses the trigger grammar of dlt (_trigger_helpers.py)', () => {
    assert.deepEqual(parseTrigger('0 * * * *'), {
      type: 'schedule',
      expr: '0 * * * *',
      raw: 'schedule:0 * * * *',
    });
    assert.equal(parseTrigger('every:5m').type, 'every');
    assert.equal(periodSeconds('1.5h'), 5400);
    assert.equal(periodSeconds('90'), 90);
    assert.throws(() => parseTrigger('every:59s'), /minimum period is 1 minute/);
    assert.throws(() => parseTrigger('once:yesterday'), /ISO 8601/);
    assert.throws(() => parseTrigger('manual:jobs.a'), /synthetic/);
    assert.throws(() => parseTrigger('job.success:foo'), /job ref/);
    assert.throws(() => parseTrigger('cron:1'), /unknown type/);
    // croniter's 6 fields put seconds last; Runway's grammar puts them first.
    assert.equal(croniterToRunway('* * * * * */3'), '*/3 * * * * *');
  });

  it('matches selectors as match_triggers_with_selectors, with the synthetic triggers', () => {
    const job = m('jobs.a.load', {
      triggers: ['schedule:0 * * * *', 'job.success:jobs.a.up'],
      tags: ['ingest'],
      pipelineName: 'github',
    });
    const all = [...job.triggers, ...syntheticTriggers(job)];
    assert.deepEqual(syntheticTriggers(job), ['manual:jobs.a.load', 'tag:ingest', 'pipeline_name:github']);
    assert.deepEqual(matchSelectors('batch', all, ['tag:ingest']), ['tag:ingest']);
    assert.deepEqual(matchSelectors('batch', all, ['schedule']), ['schedule:0 * * * *']);
    assert.deepEqual(matchSelectors('batch', all, ['schedule:*']), ['schedule:0 * * * *']);
    assert.deepEqual(matchSelectors('batch', all, ['pipeline_name:git*']), ['pipeline_name:github']);
    assert.deepEqual(matchSelectors('batch', all, ['job']), all, 'job = every batch job');
    assert.deepEqual(matchSelectors('batch', all, ['interactive']), []);
    assert.deepEqual(matchSelectors('batch', all, ['tag:other']), []);
    assert.equal(
      pickTrigger(['tag:ingest', 'schedule:0 * * * *'], 'schedule:0 * * * *'),
      'schedule:0 * * * *',
    );
    assert.equal(pickTrigger(['tag:ingest'], 'schedule:0 * * * *'), 'tag:ingest');
  });

  it('every: fires at anchor + k·period (k ≥ 1); once: at its time; the cron functions take both', () => {
    const every = 'every:300@2026-12-04T10:00:00.000Z';
    assert.equal(
      nextFire(every, 'UTC', new Date('2026-12-04T09:00:00Z'))?.toISOString(),
      '2026-12-04T10:05:00.000Z',
    );
    assert.equal(
      nextFire(every, 'UTC', new Date('2026-12-04T10:05:00Z'))?.toISOString(),
      '2026-12-04T10:10:00.000Z',
    );
    assert.ok(isFireTime(every, 'UTC', new Date('2026-12-04T10:15:00Z')));
    assert.ok(!isFireTime(every, 'UTC', new Date('2026-12-04T10:00:00Z')), 'not the anchor itself');
    assert.equal(
      prevFire(every, 'UTC', new Date('2026-12-04T10:14:59Z'))?.toISOString(),
      '2026-12-04T10:10:00.000Z',
    );
    const due = dueFires(
      every,
      'UTC',
      new Date('2026-12-04T10:00:00Z'),
      new Date('2026-12-05T10:00:00Z'),
      10,
    );
    assert.equal(due.count, 288, 'a day of 5-minute periods');
    assert.equal(due.fires.length, 10, 'the latest 10');
    assert.equal(due.fires[9]?.toISOString(), '2026-12-05T10:00:00.000Z');
    assert.equal(due.next?.toISOString(), '2026-12-05T10:05:00.000Z');
    const once = 'once:2026-12-24T18:00:00.000Z';
    assert.equal(
      nextFire(once, 'UTC', new Date('2026-12-01T00:00:00Z'))?.toISOString(),
      '2026-12-24T18:00:00.000Z',
    );
    assert.equal(nextFire(once, 'UTC', new Date('2026-12-24T18:00:00Z')), null);
    assert.equal(
      prevFire('0 * * * *', 'UTC', new Date('2026-12-04T10:30:00Z'))?.toISOString(),
      '2026-12-04T10:00:00.000Z',
    );
    assert.equal(
      prevFire('0 * * * *', 'UTC', new Date('2026-12-04T10:00:00Z'))?.toISOString(),
      '2026-12-04T10:00:00.000Z',
    );
  });

  it('the refresh cascade walks freshness edges breadth first, stops at block, skips external-scheduler interval jobs', () => {
    const jobs = [
      m('jobs.a.root'),
      m('jobs.a.b', { freshness: ['jobs.a.root'] }),
      m('jobs.a.c', { freshness: ['jobs.a.b'] }),
      m('jobs.a.blocked', { freshness: ['jobs.a.root'], refreshPropagation: 'block' }),
      m('jobs.a.behind_block', { freshness: ['jobs.a.blocked'] }),
      m('jobs.a.own', {
        freshness: ['jobs.a.root'],
        interval: { start: '2026-01-01T00:00:00.000Z', end: null },
        externalSchedulers: true,
      }),
      m('jobs.a.cycle', { freshness: ['jobs.a.c', 'jobs.a.root'] }),
    ];
    assert.deepEqual(refreshCascadeTargets('jobs.a.root', jobs), ['jobs.a.b', 'jobs.a.cycle', 'jobs.a.c']);
  });
});
