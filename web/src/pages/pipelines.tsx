import type { PipelineInsights } from '../../../libs/client/src/dashboard.js';
import { account, dashboard } from '../api.js';
import { useApp, wsPath } from '../context.js';
import { Link } from '../router.js';
import {
  Empty,
  PageHeader,
  Show,
  StatusBadge,
  formatDuration,
  formatTime,
  relativeTime,
  useAsync,
} from '../ui.js';

export function PipelinesPage() {
  const { ws } = useApp();
  const list = useAsync(() => account.pipelines(ws.id), [ws.id]);
  return (
    <section>
      <PageHeader title="Pipelines" />
      <Show a={list} what="pipelines">
        {(l) =>
          l.items.length === 0 ? (
            <Empty>
              <p>No pipeline reported yet.</p>
              <p className="muted small">
                Runs of dlt pipelines report their schemas and loads here when they end.
              </p>
            </Empty>
          ) : (
            <ul className="cards">
              {l.items.map((p) => (
                <li key={p.name} className="card">
                  <h2>
                    <Link href={wsPath(ws.id, `/pipelines/${encodeURIComponent(p.name)}`)}>{p.name}</Link>
                  </h2>
                  <p className="muted">
                    {p.destination ?? 'unknown destination'} · dataset {p.dataset_name ?? '—'}
                  </p>
                  <p>Last reported {relativeTime(p.date_updated)}</p>
                </li>
              ))}
            </ul>
          )
        }
      </Show>
    </section>
  );
}

export function PipelineDetailPage({ name }: { name: string }) {
  const { ws } = useApp();
  const ins = useAsync(() => dashboard.pipelineInsights(ws.id, name, { runs: 30 }), [ws.id, name]);
  return (
    <section>
      <PageHeader title={`Pipeline ${name}`} />
      <Show a={ins} what="the pipeline">
        {(p) => (
          <>
            <dl className="meta">
              <dt>Destination</dt>
              <dd>{p.destination ?? '—'}</dd>
              <dt>Dataset</dt>
              <dd>{p.dataset_name ?? '—'}</dd>
              <dt>Success rate</dt>
              <dd>{p.trend.success_rate === null ? '—' : `${Math.round(p.trend.success_rate * 100)} %`}</dd>
              <dt>Last run</dt>
              <dd>
                <Link href={wsPath(ws.id, `/runs/${p.last_run_id}`)}>open</Link>
              </dd>
            </dl>
            <h2>Lineage</h2>
            <Lineage lineage={p.lineage} />
            <h2>Duration trend</h2>
            <Trend runs={p.trend.runs} />
            <h2>Schemas</h2>
            {p.schemas.map((s) => (
              <div key={s.name} className="card">
                <h3>{s.name}</h3>
                {s.tables.length === 0 ? (
                  <p className="muted">No tables.</p>
                ) : (
                  s.tables.map((t) => (
                    <details key={t.name}>
                      <summary>
                        <strong>{t.name}</strong>{' '}
                        <span className="muted">
                          {t.parent ? `child of ${t.parent}` : t.resource ? `from ${t.resource}` : ''}
                          {t.write_disposition ? ` · ${t.write_disposition}` : ''} · {t.columns.length}{' '}
                          columns
                          {t.children.length ? ` · children: ${t.children.join(', ')}` : ''}
                        </span>
                      </summary>
                      <div className="table-wrap">
                        <table>
                          <thead>
                            <tr>
                              <th scope="col">Column</th>
                              <th scope="col">Type</th>
                              <th scope="col">Nullable</th>
                            </tr>
                          </thead>
                          <tbody>
                            {t.columns.map((c) => (
                              <tr key={c.name}>
                                <td>
                                  <code>{c.name}</code>
                                </td>
                                <td>{c.data_type ?? '—'}</td>
                                <td>{c.nullable ? 'yes' : 'no'}</td>
                              </tr>
                            ))}
                          </tbody>
                        </table>
                      </div>
                    </details>
                  ))
                )}
              </div>
            ))}
            <h2>Loads</h2>
            {p.loads.length === 0 ? (
              <Empty>No loads reported.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Load</th>
                      <th scope="col">Status</th>
                      <th scope="col">Rows</th>
                      <th scope="col">Duration</th>
                      <th scope="col">At</th>
                    </tr>
                  </thead>
                  <tbody>
                    {p.loads.map((l) => (
                      <tr key={l.load_id}>
                        <td>
                          <Link href={wsPath(ws.id, `/runs/${l.run_id}`)}>{l.load_id}</Link>
                        </td>
                        <td>
                          <StatusBadge status={l.status} />
                        </td>
                        <td
                          title={Object.entries(l.row_counts)
                            .map(([t, n]) => `${t}: ${n}`)
                            .join('\n')}
                        >
                          {l.rows_total.toLocaleString()}
                        </td>
                        <td>{formatDuration(l.duration_ms)}</td>
                        <td>{formatTime(l.at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </>
        )}
      </Show>
    </section>
  );
}

/** resource → table → child table, in three columns. */
function Lineage({ lineage }: { lineage: PipelineInsights['lineage'] }) {
  const cols = { resource: 0, table: 1, child_table: 2 } as const;
  const rows = [0, 0, 0];
  const pos = new Map<string, { x: number; y: number }>();
  const W = 220;
  const H = 44;
  for (const n of lineage.nodes) {
    const c = cols[n.kind];
    pos.set(n.id, { x: 10 + c * (W + 60), y: 10 + (rows[c] ?? 0) * (H + 14) });
    rows[c] = (rows[c] ?? 0) + 1;
  }
  if (lineage.nodes.length === 0) return <Empty>No tables reported.</Empty>;
  const height = Math.max(...rows) * (H + 14) + 10;
  const width = 3 * W + 2 * 60 + 20;
  return (
    <div className="svg-wrap">
      <svg
        viewBox={`0 0 ${width} ${height}`}
        width={width}
        height={height}
        role="img"
        aria-label={`Lineage: ${lineage.edges.length} links between ${lineage.nodes.length} resources and tables`}
      >
        {lineage.edges.map((e) => {
          const a = pos.get(e.from);
          const b = pos.get(e.to);
          if (!a || !b) return null;
          const x1 = a.x + W;
          const y1 = a.y + H / 2;
          const x2 = b.x;
          const y2 = b.y + H / 2;
          return (
            <path
              key={`${e.from}-${e.to}`}
              d={`M${x1},${y1} C${x1 + 30},${y1} ${x2 - 30},${y2} ${x2},${y2}`}
              className="edge"
              markerEnd="url(#arrow)"
            />
          );
        })}
        <defs>
          <marker
            id="arrow"
            viewBox="0 0 10 10"
            refX="10"
            refY="5"
            markerWidth="6"
            markerHeight="6"
            orient="auto"
          >
            <path d="M0,0 L10,5 L0,10 z" className="arrow" />
          </marker>
        </defs>
        {lineage.nodes.map((n) => {
          const p = pos.get(n.id);
          if (!p) return null;
          return (
            <g key={n.id} className={`node node-${n.kind}`}>
              <rect x={p.x} y={p.y} width={W} height={H} rx={6} />
              <text x={p.x + 10} y={p.y + 18} className="kind">
                {n.kind.replace('_', ' ')}
              </text>
              <text x={p.x + 10} y={p.y + 35}>
                {n.label.length > 28 ? `${n.label.slice(0, 27)}…` : n.label}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}

function Trend({ runs }: { runs: PipelineInsights['trend']['runs'] }) {
  if (runs.length === 0) return <Empty>No runs yet.</Empty>;
  const W = 640;
  const H = 160;
  const max = Math.max(1, ...runs.map((r) => r.duration_ms ?? 0));
  const bw = Math.max(4, Math.min(32, (W - 40) / runs.length - 4));
  return (
    <div className="svg-wrap">
      <svg
        viewBox={`0 0 ${W} ${H + 30}`}
        width={W}
        height={H + 30}
        role="img"
        aria-label={`Durations of the last ${runs.length} runs, longest ${formatDuration(max)}`}
      >
        <text x={4} y={12} className="axis">
          {formatDuration(max)}
        </text>
        <line x1={36} x2={W} y1={H} y2={H} className="axis-line" />
        {runs.map((r, i) => {
          const h = ((r.duration_ms ?? 0) / max) * (H - 20);
          const x = 40 + i * (bw + 4);
          return (
            <g key={r.run_id}>
              <rect x={x} y={H - h} width={bw} height={h} className={`bar bar-${r.status}`}>
                <title>
                  Run #{r.number}: {r.status}, {formatDuration(r.duration_ms)}
                </title>
              </rect>
              {runs.length <= 20 && (
                <text x={x + bw / 2} y={H + 14} textAnchor="middle" className="axis">
                  {r.number}
                </text>
              )}
            </g>
          );
        })}
      </svg>
    </div>
  );
}
