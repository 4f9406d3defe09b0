import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobSpec } from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import { jobDecider, type JobState, type RequestRun, type UpsertJob } from '../job/job.decider.js';
import type { JobEvent } from '../job/job.events.js';
import { dueFires, nextFire, shortestInterval, validateCron, validateTimezone } from './cron.js';
import { plan } from './scheduler.js';

const iso = (ds: Date[]) => ds.map((d) => d.toISOString());
const between = (expr: string, tz: string, a: string, b: string) =>
  iso(dueFires(expr, tz, new Date(a), new Date(b), 10_000).fires);

describe('cron validation', () => {
  it('accepts 5 fields and 6 with seconds, and names the field at fault', () => {
    assert.equal(validateCron('0  *  * * *'), '0 * * * *');
    assert.equal(validateCron('*/2 * * * * *'), '*/2 * * * * *');
    assert.throws(() => validateCron('61 * * * *'), {
      message: 'invalid schedule "61 * * * *": minute 61 out of range 0-59',
    });
    assert.throws(() => validateCron('0 25 * * *'), {
      message: 'invalid schedule "0 25 * * *": hour 25 out of range 0-23',
    });
    assert.throws(() => validateCron('0 0 * 13 *'), /month 13 out of range 1-12/);
    assert.throws(() => validateCron('61 * * * * *'), /second 61 out of range 0-59/);
    assert.throws(() => validateCron('* * * *'), /expected 5 fields .* got 4/);
    assert.throws(() => validateCron('x * * * *'), /minute "x"/);
  });
  it('refuses a step larger than the field range, and other forms cron-parser accepts', () => {
    assert.throws(() => validateCron('*/61 * * * *'), {
      message:
        'invalid schedule "*/61 * * * *": minute step 61 out of range 1-59 (the field\'s values are 0-59)',
    });
    assert.throws(() => validateCron('*/60 * * * *'), /minute step 60 out of range 1-59/);
    assert.throws(() => validateCron('0 */24 * * *'), /hour step 24 out of range 1-23/);
    assert.throws(() => validateCron('0 0 */31 * *'), /day of month step 31 out of range 1-30/);
    assert.throws(() => validateCron('0 0 * 1-5/12 *'), /month step 12 out of range 1-11/);
    assert.throws(() => validateCron('0 0 * * 1/7'), /day of week step 7 out of range 1-6/);
    assert.throws(() => validateCron('*/61 * * * * *'), /second step 61 out of range 1-59/);
    assert.throws(() => validateCron('0 5,10/90 * * *'), /hour step 90/);
    assert.throws(
      () => validateCron('*/0 * * * *'),
      /minute "\*\/0": the step after \/ must be a whole number|minute step 0/,
    );
    assert.throws(
      () => validateCron('? * * * *'),
      /minute "\?": \? is allowed only in day of month and day of week/,
    );
    assert.throws(() => validateCron('0 0 H * *'), /day of month "H": H \(a random value\) is not supported/);
    // Still accepted: the largest steps, names, ? in the day fields.
    assert.equal(validateCron('*/59 * * * *'), '*/59 * * * *');
    assert.equal(validateCron('0 */23 */30 */11 */6'), '0 */23 */30 */11 */6');
    assert.equal(validateCron('0 0 ? * THU'), '0 0 ? * THU');
    assert.equal(validateCron('0 0 * JAN-DEC/3 MON-FRI'), '0 0 * JAN-DEC/3 MON-FRI');
  });
  it('accepts IANA zones only', () => {
    assert.equal(validateTimezone('Europe/Berlin'), 'Europe/Berlin');
    assert.throws(() => validateTimezone('Mars/Olympus'), /invalid time zone "Mars\/Olympus"/);
  });
});

describe('next fire times across daylight-saving changes', () => {
  it('Europe/Berlin 30 2 * * *: the skipped 02:30 fires once at 03:30 CEST', () => {
    // 2026-03-29 02:00 CET → 03:00 CEST.
    assert.deepEqual(between('30 2 * * *', 'Europe/Berlin', '2026-03-28T12:00:00Z', '2026-03-30T12:00:00Z'), [
      '2026-03-29T01:30:00.000Z', // 03:30 CEST, the next valid instant
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
  });
  it('Europe/Berlin 30 2 * * *: the repeated 02:30 fires once', () => {
    // 2026-10-25 03:00 CEST → 02:00 CET: 02:30 happens at 00:30Z and 01:30Z.
    assert.deepEqual(between('30 2 * * *', 'Europe/Berlin', '2026-10-24T12:00:00Z', '2026-10-26T12:00:00Z'), [
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ]);
    // Stepping one fire at a time (what the scheduler does) does not fire it again either.
    const a = nextFire('30 2 * * *', 'Europe/Berlin', new Date('2026-10-24T12:00:00Z'))!;
    assert.equal(a.toISOString(), '2026-10-25T00:30:00.000Z');
    assert.equal(nextFire('30 2 * * *', 'Europe/Berlin', a)!.toISOString(), '2026-10-26T01:30:00.000Z');
  });
  it('America/New_York hourly: every real hour once across both changes', () => {
    for (const [a, b] of [
      ['2026-03-07T23:00:00Z', '2026-03-09T01:00:00Z'],
      ['2026-10-31T23:00:00Z', '2026-11-02T01:00:00Z'],
    ] as const) {
      const fires = dueFires('0 * * * *', 'America/New_York', new Date(a), new Date(b), 1000).fires;
      assert.equal(fires.length, 26);
      for (let i = 1; i < fires.length; i++)
        assert.equal(fires[i]!.getTime() - fires[i - 1]!.getTime(), 3600_000, fires[i]!.toISOString());
      assert.equal(new Set(iso(fires)).size, fires.length);
    }
  });
});

describe('missed fire policies', () => {
  const opts = { runAllCap: 10, skipGraceMs: 5000 };
  const cursor = new Date('2026-01-01T00:00:00Z');
  const now = new Date('2026-01-01T00:30:10Z');
  it('run_once fires the latest missed time once', () => {
    const p = plan('run_once', '* * * * *', 'UTC', cursor, now, opts);
    assert.deepEqual(iso(p.fire), ['2026-01-01T00:30:00.000Z']);
    assert.equal(p.cursor.toISOString(), '2026-01-01T00:30:00.000Z');
  });
  it('run_all fires the latest 10 in order', () => {
    const p = plan('run_all', '* * * * *', 'UTC', cursor, now, opts);
    assert.equal(p.fire.length, 10);
    assert.equal(p.fire[0]!.toISOString(), '2026-01-01T00:21:00.000Z');
    assert.equal(p.fire[9]!.toISOString(), '2026-01-01T00:30:00.000Z');
  });
  it('skip fires nothing stale, but a time due just now', () => {
    assert.deepEqual(
      plan('skip', '* * * * *', 'UTC', cursor, new Date('2026-01-01T00:30:30Z'), opts).fire,
      [],
    );
    assert.equal(
      plan('skip', '* * * * *', 'UTC', cursor, new Date('2026-01-01T00:30:03Z'), opts).fire.length,
      1,
    );
  });
  it('nothing due: nothing fires', () => {
    assert.deepEqual(plan('run_once', '0 * * * *', 'UTC', cursor, now, opts).fire, []);
  });
});

describe('job decider and scheduled fires', () => {
  const jobId = '11111111-1111-4111-8111-111111111111';
  const upsert = (over: Partial<UpsertJob> = {}): UpsertJob => ({
    type: 'UpsertJob',
    jobId,
    versionId: '22222222-2222-4222-8222-222222222222',
    name: 'a.py',
    description: '',
    entryPoint: 'a.py',
    kind: 'batch',
    schedule: '*/2 * * * * *',
    actor: 'u',
    ...over,
  });
  const fire = (at: string): RequestRun => ({
    type: 'RequestRun',
    runId: '33333333-3333-4333-8333-333333333333',
    trigger: 'schedule',
    profile: null,
    deployment: { id: '44444444-4444-4444-8444-444444444444', version: 1 },
    configuration: null,
    requestedBy: 'scheduler',
    fireAt: at,
  });
  const fold = (s: JobState, es: JobEvent[]) => es.reduce(jobDecider.evolve, s);

  it('validates schedule and time zone with precise errors', () => {
    const s = jobDecider.initialState();
    assert.throws(
      () => jobDecider.decide(upsert({ schedule: '61 * * * *' }), s),
      (e: unknown) =>
        e instanceof DomainError &&
        e.message === 'invalid schedule "61 * * * *": minute 61 out of range 0-59',
    );
    assert.throws(() => jobDecider.decide(upsert({ timezone: 'Nowhere/Land' }), s), DomainError);
    const [c] = jobDecider.decide(upsert(), s);
    const spec = (c as Extract<JobEvent, { type: 'JobCreated' }>).data.spec as JobSpec;
    assert.equal(spec.timezone, 'UTC');
    assert.equal(spec.missedPolicy, 'run_once');
  });

  it('fires a time once, refuses earlier or equal ones, and stops when inactive', () => {
    let s = fold(
      jobDecider.initialState(),
      jobDecider.decide(upsert({ timezone: 'Europe/Berlin' }), jobDecider.initialState()),
    );
    const e1 = jobDecider.decide(fire('2026-01-01T00:00:02.000Z'), s);
    assert.equal(e1.length, 1);
    assert.equal(e1[0]!.type, 'RunRequested');
    s = fold(s, e1);
    assert.equal(s.lastFireAt, '2026-01-01T00:00:02.000Z');
    assert.deepEqual(jobDecider.decide(fire('2026-01-01T00:00:02.000Z'), s), []);
    assert.deepEqual(jobDecider.decide(fire('2026-01-01T00:00:00.000Z'), s), []);
    const e2 = jobDecider.decide(fire('2026-01-01T00:00:04.000Z'), s);
    assert.equal(e2.length, 1);
    s = fold(s, e2);
    assert.equal(s.lastRunNumber, 2);
    s = fold(s, jobDecider.decide(upsert({ active: false }), s));
    assert.deepEqual(jobDecider.decide(fire('2026-01-01T00:00:06.000Z'), s), []);
  });
});

describe('shortestInterval', () => {
  it('is the shortest time between two fires, in seconds', () => {
    assert.equal(shortestInterval('*/10 * * * * *'), 10);
    assert.equal(shortestInterval('*/5 * * * * *'), 5);
    assert.equal(shortestInterval('* * * * *'), 60);
    assert.equal(shortestInterval('*/15 * * * *'), 900);
    assert.equal(shortestInterval('0,59 * * * * *'), 1); // across the minute
    assert.equal(shortestInterval('0 0,1 * * *'), 3600);
    assert.equal(shortestInterval('30 2 * * *'), 86_400);
    assert.equal(shortestInterval('0 0 1 1 *'), 365 * 86_400);
    // Two fires a year, a second apart (more than the sampled fires away).
    assert.equal(shortestInterval('0,1 0 0 1 1 *'), 1);
  });
});
