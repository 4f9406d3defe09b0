import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonLine, logFormat, withLogFields } from './logger.js';
import { metricsExposition, observeProjectionLag, observeQueueDepth, secondsSince } from './metrics.js';
import { Readiness } from './readiness.js';
import { tracingEnabled } from './tracing.js';

describe('libs/observability', () => {
  it('names every metric with the runway_ prefix, and reads the gauges at scrape time', async () => {
    const removeLag = observeProjectionLag('spec_projection', () => Promise.resolve(7));
    const removeDepth = observeQueueDepth('spec-consumer', () => Promise.reject(new Error('NATS away')));
    try {
      const { body, contentType } = await metricsExposition();
      assert.match(contentType, /^text\/plain/);
      const names = [...body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
      assert.ok(names.length > 10);
      for (const n of names) assert.match(n, /^runway_/);
      for (const n of names.filter(
        (x) => !x.startsWith('runway_process_') && !x.startsWith('runway_nodejs_'),
      ))
        assert.match(n, /_(seconds|total|depth|lag)$/, n);
      assert.match(body, /^runway_projection_lag\{projection="spec_projection"\} 7$/m);
      // A source that cannot answer is left out of the scrape, not an error.
      assert.doesNotMatch(body, /spec-consumer/);
    } finally {
      removeLag();
      removeDepth();
    }
    assert.doesNotMatch((await metricsExposition()).body, /spec_projection/);
  });

  it('never reports a negative latency', () => {
    assert.equal(secondsSince(2_000, 1_000), 0);
    assert.equal(secondsSince(1_000, 3_500), 2.5);
  });

  it('is ready only when every condition is met and every check passes in time', async () => {
    const r = new Readiness();
    assert.deepEqual(await r.report(), { ready: true, reasons: [] });
    r.require('boot', 'still booting');
    const remove = r.addCheck('slow', () => new Promise<undefined>(() => undefined));
    r.addCheck('broken', () => Promise.reject(new Error('boom')));
    const report = await r.report(50);
    assert.equal(report.ready, false);
    assert.deepEqual(report.reasons, ['still booting', 'slow: no answer in 50 ms', 'broken: boom']);
    r.satisfy('boot');
    remove();
    assert.deepEqual((await r.report(50)).reasons, ['broken: boom']);
  });

  it('writes one JSON object per log line, with the fields of the work it is about', () => {
    const line = withLogFields({ correlationId: 'c-1' }, () =>
      withLogFields({ runId: 'r-1' }, () => jsonLine('warn', 'execution', 'a "quoted" message')),
    );
    const o = JSON.parse(line) as Record<string, unknown>;
    assert.equal(o.level, 'warn');
    assert.equal(o.service, 'execution');
    assert.equal(o.msg, 'a "quoted" message');
    assert.equal(o.correlationId, 'c-1');
    assert.equal(o.runId, 'r-1');
    assert.ok(!Number.isNaN(Date.parse(o.time as string)));
    assert.ok(!line.includes('\n'));
  });

  it('reads its switches strictly: text and off by default', () => {
    assert.equal(logFormat({}), 'text');
    assert.equal(logFormat({ RUNWAY_LOG_FORMAT: 'json' }), 'json');
    assert.throws(() => logFormat({ RUNWAY_LOG_FORMAT: 'yaml' }), /RUNWAY_LOG_FORMAT/);
    assert.equal(tracingEnabled({}), false);
    assert.equal(tracingEnabled({ RUNWAY_OTEL: 'on' }), true);
    assert.throws(() => tracingEnabled({ RUNWAY_OTEL: 'maybe' }), /RUNWAY_OTEL/);
  });
});
