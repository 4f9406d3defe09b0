import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RunBeacon, summarizeState, summarizeTrace, type BeaconReport } from './beacon.js';

const SECRET = 'beacon-spec-secret-31f0';
const mask = (s: string) => s.split(SECRET).join('***');
const RUN = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const tokenOf = (runId: string) => `${runId.slice(0, 8)}`.repeat(8);

const step = (name: string, extra: Record<string, unknown> = {}) => ({
  step: name,
  started_at: '2026-01-01T00:00:00.000000+00:00',
  finished_at: '2026-01-01T00:00:01.250000+00:00',
  ...extra,
});

describe("the run's beacon", () => {
  it("summarizes a dlt trace: timings, loads, rows per table (dlt's own tables out), masked exceptions", () => {
    const t = summarizeTrace(
      {
        transaction_id: 't',
        pipeline_name: 'p',
        started_at: '2026-01-01T00:00:00+00:00',
        finished_at: '2026-01-01T00:00:03+00:00',
        execution_context: { library: { version: '1.26.0' } },
        steps: [
          step('extract', { step_info: { loads_ids: ['1.1'] } }),
          step('normalize', {
            step_info: { loads_ids: ['1.1'] },
            normalize_info: {
              table_metrics: [
                { table_name: 'items', items_count: 5 },
                { table_name: '_dlt_pipeline_state', items_count: 1 },
              ],
            },
          }),
          step('load', {
            load_info: { destination_name: 'duckdb', dataset_name: 'd' },
            step_exception: `refused ${SECRET}`,
            exception_traces: [{ exception_type: 'ValueError', message: `refused ${SECRET}` }],
          }),
          step('run', { step_exception: `refused ${SECRET}` }),
        ],
      },
      mask,
    );
    assert.equal(t.durationMs, 3000);
    assert.equal(t.dltVersion, '1.26.0');
    assert.deepEqual(t.loadIds, ['1.1']);
    assert.deepEqual(t.rowCounts, { items: 5 });
    assert.equal(t.steps[0]?.durationMs, 1250);
    assert.equal(t.steps[0]?.startedAt, '2026-01-01T00:00:00.000Z');
    assert.deepEqual([t.destination, t.datasetName, t.failed], ['duckdb', 'd', true]);
    assert.deepEqual(t.exceptions, [{ step: 'load', type: 'ValueError', message: 'refused ***' }]);
    assert.ok(!JSON.stringify(t).includes(SECRET));
    assert.equal(t.truncated, false);
  });

  it('bounds what it keeps and says so', () => {
    const t = summarizeTrace(
      {
        transaction_id: 't',
        pipeline_name: 'p',
        steps: Array.from({ length: 30 }, (_, i) =>
          step(`s${i}`, { step_exception: `e${i} ${'x'.repeat(3000)}`, step_info: { loads_ids: [`${i}`] } }),
        ),
      },
      mask,
    );
    assert.equal(t.steps.length, 20);
    assert.equal(t.exceptions.length, 10);
    assert.ok(t.exceptions.every((e) => e.message.length === 2000));
    assert.equal(t.truncated, true);
    const s = summarizeState(
      {
        pipeline_name: 'p',
        destination_name: 'duckdb',
        dataset_name: null,
        schemas: [{ name: 'p', version: 3, version_hash: 'h', tables: { a: {}, b: {} } }],
      },
      mask,
    );
    assert.deepEqual(s, {
      pipelineName: 'p',
      destination: 'duckdb',
      datasetName: null,
      schemas: [{ name: 'p', version: 3, versionHash: 'h', tables: ['a', 'b'] }],
      truncated: false,
    });
  });

  describe('its endpoint', () => {
    const beacon = new RunBeacon(tokenOf, '127.0.0.1', 1024);
    const reports: BeaconReport[] = [];
    const warnings: string[] = [];
    let dsn = '';
    let base = '';
    before(async () => {
      await beacon.start();
      dsn =
        beacon.open(RUN, {
          mask,
          warn: (l) => warnings.push(l),
          report: (r) => {
            reports.push(r);
            return Promise.resolve(reports.length <= 1);
          },
        }) ?? '';
      base = dsn.slice(0, dsn.indexOf('/beacon/'));
    });
    after(() => beacon.stop());
    const put = (url: string, body: string) => fetch(url, { method: 'PUT', body }).then((r) => r.status);
    const trace = JSON.stringify({ transaction_id: 't', pipeline_name: 'p', steps: [] });

    it('takes the run’s own reports and refuses everything else', async () => {
      assert.equal(dsn, `${base}/beacon/v1/runs/${RUN}/${tokenOf(RUN)}`);
      assert.equal(await put(`${dsn}/trace`, trace), 200);
      assert.equal(reports.length, 1);
      assert.equal(await put(`${dsn}/trace`, trace), 409, 'the run takes no more');
      assert.equal(await put(`${dsn}/trace`, 'nope'), 400);
      assert.equal(await put(`${dsn}/state`, '{"a":1}'), 422);
      assert.equal(await put(`${dsn}/trace`, JSON.stringify({ pad: 'x'.repeat(2000) })), 413);
      assert.equal(
        await put(`${dsn}/trace`, JSON.stringify({ pad: 'x'.repeat(15_000) })),
        413,
        'read and dropped',
      );
      assert.equal(await put(`${dsn}/job_result`, '{}'), 404);
      assert.equal(await put(`${base}/beacon/v1/runs/${RUN}/${tokenOf(OTHER)}/trace`, trace), 403);
      assert.equal(await put(`${base}/beacon/v1/runs/${OTHER}/${tokenOf(RUN)}/trace`, trace), 403);
      assert.equal(await put(`${base}/beacon/v1/runs/${OTHER}/${tokenOf(OTHER)}/trace`, trace), 404);
      assert.equal((await fetch(`${dsn}/trace`)).status, 405);
      assert.equal(reports.length, 2);
      assert.ok(warnings.some((w) => /refused \(413\)/.test(w)));
      assert.ok(warnings.some((w) => /wrong token/.test(w)));
      assert.ok(
        warnings.every((w) => !w.includes(tokenOf(RUN))),
        'no warning repeats the token',
      );
      await beacon.close(RUN);
      assert.equal(await put(`${dsn}/trace`, trace), 404, 'closed: the run is not in progress');
    });
  });
});
