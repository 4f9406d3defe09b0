import type { RunSummary } from '../../libs/client/src/dashboard.js';
import { useApp, wsPath } from './context.js';
import { Link } from './router.js';
import { Empty, StatusBadge, formatDuration, formatTime, relativeTime } from './ui.js';

export function RunsTable({
  runs,
  showJob,
  empty,
}: {
  runs: readonly RunSummary[];
  showJob?: boolean;
  empty: string;
}) {
  const { ws } = useApp();
  if (runs.length === 0) return <Empty>{empty}</Empty>;
  return (
    <div className="table-wrap">
      <table className="runs">
        <thead>
          <tr>
            <th scope="col">Run</th>
            {showJob && <th scope="col">Job</th>}
            <th scope="col">Status</th>
            <th scope="col">Trigger</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.id}>
              <td>
                <Link href={wsPath(ws.id, `/runs/${r.id}`)}>#{r.number}</Link>
              </td>
              {showJob && (
                <td>
                  <Link href={wsPath(ws.id, `/jobs/${r.job_id}`)}>{r.job_name ?? r.job_id}</Link>
                </td>
              )}
              <td>
                <StatusBadge status={r.status} />
                {r.failure_reason && <div className="reason">{r.failure_reason}</div>}
              </td>
              <td>{r.trigger}</td>
              <td title={formatTime(r.started_at ?? r.created_at)}>
                {relativeTime(r.started_at ?? r.created_at)}
              </td>
              <td>{formatDuration(r.duration_ms)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
