import { dashboard } from '../api.js';
import { RunsTable } from '../components.js';
import { useApp, wsPath } from '../context.js';
import { useDebounced, useLiveEvents } from '../live.js';
import { Link } from '../router.js';
import { Empty, PageHeader, Show, StatusBadge, relativeTime, useAsync } from '../ui.js';

const COUNTS = ['running', 'completed', 'failed', 'cancelled', 'skipped', 'pending'] as const;

export function OverviewPage() {
  const { ws, canWrite } = useApp();
  const overview = useAsync(() => dashboard.overview(ws.id, { recent: 15 }), [ws.id]);
  const refetch = useDebounced(overview.reload, 300);
  const live = useLiveEvents(ws.id, (m) => {
    if (m.type !== 'ready') refetch();
  });
  return (
    <section>
      <PageHeader title="Overview">
        <span className={`live live-${live}`} role="status" aria-live="polite">
          {live === 'live' ? '● Live' : live === 'connecting' ? 'Connecting…' : 'Reconnecting…'}
        </span>
      </PageHeader>
      <Show a={overview} what="the overview">
        {(o) => (
          <>
            <ul className="stats" aria-label="Runs in the last 24 hours">
              <li>
                <strong>{o.counts_24h.total}</strong>
                <span>runs in 24 h</span>
              </li>
              {COUNTS.map((k) => (
                <li key={k} className={`stat-${k}`}>
                  <strong>{o.counts_24h[k]}</strong>
                  <span>{k}</span>
                </li>
              ))}
            </ul>
            <h2>Jobs</h2>
            {o.jobs.length === 0 ? (
              <Empty>
                <p>No jobs yet.</p>
                {canWrite && <Link href={wsPath(ws.id, '/jobs/new')}>Create your first job</Link>}
                <p className="muted small">
                  Or deploy a dlt workspace with <code>dlt runtime launch</code>: it creates one per script.
                </p>
              </Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Job</th>
                      <th scope="col">Last run</th>
                      <th scope="col">Schedule</th>
                      <th scope="col">Next run</th>
                    </tr>
                  </thead>
                  <tbody>
                    {o.jobs.map((j) => (
                      <tr key={j.id}>
                        <td>
                          <Link href={wsPath(ws.id, `/jobs/${j.id}`)}>{j.name}</Link>
                        </td>
                        <td>
                          {j.last_run ? (
                            <Link href={wsPath(ws.id, `/runs/${j.last_run.id}`)}>
                              <StatusBadge status={j.last_run.status} /> #{j.last_run.number}{' '}
                              <span className="muted">{relativeTime(j.last_run.created_at)}</span>
                            </Link>
                          ) : (
                            <span className="muted">never run</span>
                          )}
                        </td>
                        <td>
                          {j.schedule ? <code>{j.schedule}</code> : <span className="muted">manual</span>}
                          {j.schedule && !j.active && <span className="badge">paused</span>}
                        </td>
                        <td>{j.next_fire_at ? relativeTime(j.next_fire_at) : '—'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <h2>Recent runs</h2>
            <RunsTable runs={o.recent_runs} showJob empty="No runs yet." />
          </>
        )}
      </Show>
    </section>
  );
}
