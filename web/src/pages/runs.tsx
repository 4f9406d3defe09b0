import { useEffect, useMemo, useRef, useState, type FormEvent, type ReactNode } from 'react';
import {
  runStatuses,
  type RunStatus,
  type RunSummary,
  type RunTrigger,
  type RunsQuery,
} from '../../../libs/client/src/dashboard.js';
import { TERMINAL_RUN_STATUSES, type PipelineTrace, type Run } from '../../../libs/client/src/index.js';
import { dashboard, runway } from '../api.js';
import { RunsTable } from '../components.js';
import { useApp, wsPath } from '../context.js';
import { useDebounced, useLiveEvents } from '../live.js';
import { Link, navigate, useLocation } from '../router.js';
import {
  ErrorBox,
  Loading,
  PageHeader,
  Show,
  StatusBadge,
  errorBoxText,
  formatDuration,
  formatTime,
  useAction,
  useAsync,
} from '../ui.js';

const TRIGGERS: RunTrigger[] = ['manual', 'schedule', 'api'];
const PAGE = 50;

/** The filters live in the address (shareable, back button works). */
function queryOf(q: URLSearchParams): RunsQuery {
  const list = (k: string) => (q.get(k) ?? '').split(',').filter(Boolean);
  const iso = (k: string) => {
    const v = q.get(k);
    return v ? new Date(v).toISOString() : undefined;
  };
  return {
    ...(q.get('job') ? { job: q.get('job') ?? '' } : {}),
    status: list('status').filter((s): s is RunStatus => (runStatuses as readonly string[]).includes(s)),
    trigger: list('trigger').filter((s): s is RunTrigger => (TRIGGERS as string[]).includes(s)),
    ...(iso('from') ? { created_from: iso('from') } : {}),
    ...(iso('to') ? { created_to: iso('to') } : {}),
  };
}

export function RunsPage() {
  const { ws } = useApp();
  const loc = useLocation();
  const key = loc.query.toString();
  const query = useMemo(() => queryOf(new URLSearchParams(key)), [key]);
  const jobs = useAsync(() => dashboard.overview(ws.id, { recent: 1 }).then((o) => o.jobs), [ws.id]);
  const [pages, setPages] = useState<RunSummary[][]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [total, setTotal] = useState<{ count: number; at_least: boolean } | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();
  const [tick, setTick] = useState(0);
  const [fresh, setFresh] = useState(0);

  useEffect(() => {
    let live = true;
    setLoading(true);
    setError(undefined);
    dashboard.runs(ws.id, { ...query, limit: PAGE, total: true }).then(
      (p) => {
        if (!live) return;
        setPages([p.items]);
        setCursor(p.next_cursor);
        setTotal(p.total);
        setLoading(false);
        setFresh(0);
      },
      (err: unknown) => {
        if (!live) return;
        setError(errorBoxText(err));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [ws.id, query, tick]);

  const more = () => {
    if (!cursor) return;
    setLoading(true);
    dashboard.runs(ws.id, { ...query, limit: PAGE, cursor }).then(
      (p) => {
        setPages((old) => [...old, p.items]);
        setCursor(p.next_cursor);
        setLoading(false);
      },
      (err: unknown) => {
        setError(errorBoxText(err));
        setLoading(false);
      },
    );
  };

  // New runs do not move the rows being read: a notice offers to show them.
  const bump = useDebounced(() => setFresh((n) => n + 1), 300);
  useLiveEvents(ws.id, (m) => {
    if (m.type === 'run.status' && m.status === 'pending') bump();
  });

  const setFilter = (k: string, v: string | undefined) => {
    const q = new URLSearchParams(key);
    if (v) q.set(k, v);
    else q.delete(k);
    navigate(`${loc.path}${q.size ? `?${q.toString()}` : ''}`, { replace: true });
  };
  const toggle = (k: 'status' | 'trigger', v: string) => {
    const cur = (new URLSearchParams(key).get(k) ?? '').split(',').filter(Boolean);
    const next = cur.includes(v) ? cur.filter((x) => x !== v) : [...cur, v];
    setFilter(k, next.join(','));
  };
  const runs = pages.flat();
  return (
    <section>
      <PageHeader title="Runs" />
      <form className="filters card" aria-label="Filter runs" onSubmit={(e: FormEvent) => e.preventDefault()}>
        <label>
          Job
          <select
            value={loc.query.get('job') ?? ''}
            onChange={(e) => setFilter('job', e.target.value || undefined)}
          >
            <option value="">All jobs</option>
            {(jobs.value ?? []).map((j) => (
              <option key={j.id} value={j.id}>
                {j.name}
              </option>
            ))}
          </select>
        </label>
        <fieldset>
          <legend>Status</legend>
          <div className="chips">
            {runStatuses.map((s) => (
              <label key={s} className="chip">
                <input
                  type="checkbox"
                  checked={query.status?.includes(s) ?? false}
                  onChange={() => toggle('status', s)}
                />
                {s}
              </label>
            ))}
          </div>
        </fieldset>
        <fieldset>
          <legend>Trigger</legend>
          <div className="chips">
            {TRIGGERS.map((t) => (
              <label key={t} className="chip">
                <input
                  type="checkbox"
                  checked={query.trigger?.includes(t) ?? false}
                  onChange={() => toggle('trigger', t)}
                />
                {t}
              </label>
            ))}
          </div>
        </fieldset>
        <label>
          Created from
          <input
            type="datetime-local"
            value={loc.query.get('from') ?? ''}
            onChange={(e) => setFilter('from', e.target.value || undefined)}
          />
        </label>
        <label>
          Created before
          <input
            type="datetime-local"
            value={loc.query.get('to') ?? ''}
            onChange={(e) => setFilter('to', e.target.value || undefined)}
          />
        </label>
        {key && (
          <button type="button" className="link" onClick={() => navigate(loc.path, { replace: true })}>
            Clear filters
          </button>
        )}
      </form>
      {fresh > 0 && (
        <button type="button" className="notice-button" onClick={() => setTick((t) => t + 1)}>
          New runs arrived: show them
        </button>
      )}
      <ErrorBox error={error} onRetry={() => setTick((t) => t + 1)} />
      {total && (
        <p className="muted" aria-live="polite">
          {total.at_least ? 'More than ' : ''}
          {total.count.toLocaleString()} run{total.count === 1 ? '' : 's'} match · showing {runs.length}
        </p>
      )}
      {loading && pages.length === 0 ? (
        <Loading what="runs" />
      ) : (
        <RunsTable runs={runs} showJob empty={key ? 'No run matches these filters.' : 'No runs yet.'} />
      )}
      {cursor && (
        <button type="button" className="secondary" disabled={loading} onClick={more}>
          {loading ? 'Loading…' : `Load ${PAGE} more`}
        </button>
      )}
    </section>
  );
}

interface LogState {
  lines: { seq: number; stream: string; text: string }[];
  end: { lineCount: number } | undefined;
  error: string | undefined;
}

/** Follows a run's log live (every line once, in order) until the log is sealed. */
function useRunLog(ws: string, runId: string): LogState {
  const [state, setState] = useState<LogState>({ lines: [], end: undefined, error: undefined });
  useEffect(() => {
    const ac = new AbortController();
    const buffer: LogState['lines'] = [];
    let pending = '';
    let flushT: ReturnType<typeof setTimeout> | undefined;
    const flush = () => {
      flushT = undefined;
      const add = buffer.splice(0);
      if (add.length) setState((s) => ({ ...s, lines: s.lines.concat(add) }));
    };
    setState({ lines: [], end: undefined, error: undefined });
    runway
      .followRunLogs(ws, runId, {
        signal: ac.signal,
        onLine: (l) => {
          if (l.part) {
            pending += l.text;
            return;
          }
          buffer.push({ seq: l.seq, stream: l.stream, text: pending + l.text });
          pending = '';
          flushT ??= setTimeout(flush, 80);
        },
      })
      .then(
        (end) => {
          clearTimeout(flushT);
          flush();
          setState((s) => ({ ...s, end }));
        },
        (err: unknown) => {
          if (ac.signal.aborted) return;
          clearTimeout(flushT);
          flush();
          setState((s) => ({ ...s, error: errorBoxText(err) }));
        },
      );
    return () => {
      ac.abort();
      clearTimeout(flushT);
    };
  }, [ws, runId]);
  return state;
}

export function RunDetailPage({ id }: { id: string }) {
  const { ws, canWrite } = useApp();
  const run = useAsync(() => runway.getRun(ws.id, id), [ws.id, id]);
  const refetch = useDebounced(run.reload, 200);
  useLiveEvents(ws.id, (m) => {
    if (m.type === 'run.status' && m.run_id === id) refetch();
  });
  const cancel = useAction();
  return (
    <section>
      <Show a={run} what="the run">
        {(r) => {
          const ended = TERMINAL_RUN_STATUSES.includes(r.status);
          return (
            <>
              <PageHeader title={`Run #${r.number} of ${r.job?.name ?? 'a job'}`}>
                <StatusBadge status={r.status} />
                {canWrite && !ended && (
                  <button
                    type="button"
                    className="danger"
                    disabled={cancel.busy || r.status === 'cancelling'}
                    onClick={() =>
                      void cancel.run(async () => {
                        await runway.cancelRun(ws.id, r.id);
                        run.reload();
                      })
                    }
                  >
                    {cancel.busy || r.status === 'cancelling' ? 'Cancelling…' : 'Cancel run'}
                  </button>
                )}
              </PageHeader>
              <ErrorBox error={cancel.error} />
              {['failed', 'cancelled', 'skipped'].includes(r.status) && (
                <div
                  className={r.status === 'failed' ? 'card failure' : 'card ended'}
                  data-testid="failure-reason"
                >
                  <h2>Why it {r.status === 'failed' ? 'failed' : `was ${r.status}`}</h2>
                  {reasonsOf(r).map((text) => (
                    <p key={text}>{text}</p>
                  ))}
                  {r.failure_reason && (
                    <p className="muted small">
                      Reason code: <code>{r.failure_reason}</code>
                    </p>
                  )}
                  {r.stderr_tail && r.stderr_tail.length > 0 && (
                    <>
                      <h3>Last lines of standard error</h3>
                      <pre className="tail">{r.stderr_tail.join('\n')}</pre>
                    </>
                  )}
                </div>
              )}
              <div className="two-col">
                <dl className="meta">
                  <dt>Job</dt>
                  <dd>
                    <Link href={wsPath(ws.id, `/jobs/${r.job_id}`)}>{r.job?.name ?? r.job_id}</Link> (version{' '}
                    {r.job_version})
                  </dd>
                  <dt>Trigger</dt>
                  <dd>{r.trigger}</dd>
                  <dt>Profile</dt>
                  <dd>{r.profile ?? '—'}</dd>
                  <dt>Deployment</dt>
                  <dd>{r.deployment_version !== null ? `version ${r.deployment_version}` : '—'}</dd>
                  <dt>Configuration</dt>
                  <dd>{r.configuration_version !== null ? `version ${r.configuration_version}` : '—'}</dd>
                  <dt>Requested</dt>
                  <dd>{formatTime(r.date_added)}</dd>
                  <dt>Started</dt>
                  <dd>{formatTime(r.time_started)}</dd>
                  <dt>Ended</dt>
                  <dd>{formatTime(r.time_ended)}</dd>
                  <dt>Duration</dt>
                  <dd>{formatDuration(durationMs(r))}</dd>
                  <dt>Exit</dt>
                  <dd>
                    {r.exit_code !== null ? `code ${r.exit_code}` : r.signal ? `signal ${r.signal}` : '—'}
                  </dd>
                </dl>
                <div>
                  <h2>Timeline</h2>
                  <ol className="timeline" aria-label="Status timeline">
                    {(r.status_timeline ?? []).map((t, i) => (
                      <li key={`${t.status}-${i}`}>
                        <StatusBadge status={t.status} /> <time dateTime={t.at}>{formatTime(t.at)}</time>
                        {t.reason && <div className="reason">{t.reason}</div>}
                      </li>
                    ))}
                  </ol>
                </div>
              </div>
              {r.traces && r.traces.length > 0 && <TraceSection traces={r.traces} />}
              <LogViewer runId={r.id} ended={ended} />
            </>
          );
        }}
      </Show>
    </section>
  );
}

/** What the run's dlt pipelines reported (their traces): steps with timings, rows per table, errors. */
function TraceSection({ traces }: { traces: PipelineTrace[] }) {
  return (
    <div className="card" data-testid="run-traces">
      <h2>Trace</h2>
      {traces.map((t) => (
        <div key={t.transaction_id + (t.started_at ?? '')} className="trace">
          <h3>
            {t.pipeline_name} {t.failed ? <StatusBadge status="failed" /> : null}
          </h3>
          <p className="muted small">
            {[t.destination, t.dataset_name].filter(Boolean).join(' · ') || 'no load'}
            {t.duration_ms !== null ? ` · ${formatDuration(t.duration_ms)}` : ''}
            {t.dlt_version ? ` · dlt ${t.dlt_version}` : ''}
            {t.load_ids.length > 0 ? ` · load ${t.load_ids.join(', ')}` : ''}
          </p>
          <table>
            <thead>
              <tr>
                <th>Step</th>
                <th>Duration</th>
                <th>Outcome</th>
              </tr>
            </thead>
            <tbody>
              {t.steps.map((s, i) => (
                <tr key={`${s.step}-${i}`}>
                  <td>{s.step}</td>
                  <td>{formatDuration(s.duration_ms)}</td>
                  <td>{s.failed ? 'failed' : 'ok'}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {Object.keys(t.row_counts).length > 0 && (
            <p className="small">
              Rows:{' '}
              {Object.entries(t.row_counts)
                .map(([table, n]) => `${table} ${n}`)
                .join(', ')}
            </p>
          )}
          {t.exceptions.map((e, i) => (
            <pre key={i} className="tail">
              {`${e.step}: ${e.type ? `${e.type}: ` : ''}${e.message}`}
            </pre>
          ))}
          {t.truncated && <p className="muted small">Some of this trace was left out (too long).</p>}
        </div>
      ))}
    </div>
  );
}

/** What a run says about its end, in words: the message (or the timeline's last reason), once. */
function reasonsOf(r: Run): string[] {
  const last = r.status_timeline?.[r.status_timeline.length - 1]?.reason ?? null;
  const out: string[] = [];
  for (const text of [r.message, last, r.failure_reason]) {
    if (!text || out.some((o) => o.includes(text) || text.includes(o))) continue;
    out.push(text);
  }
  return out.length ? out : ['No reason was recorded.'];
}

/** Milliseconds between start and end (the API's `duration` is whole seconds). */
function durationMs(r: Run): number | null {
  if (r.time_started && r.time_ended)
    return new Date(r.time_ended).getTime() - new Date(r.time_started).getTime();
  return r.duration !== null ? r.duration * 1000 : null;
}

function LogViewer({ runId, ended }: { runId: string; ended: boolean }) {
  const { ws } = useApp();
  const log = useRunLog(ws.id, runId);
  const [search, setSearch] = useState('');
  const [onlyMatches, setOnlyMatches] = useState(false);
  const [follow, setFollow] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const needle = search.toLowerCase();
  const matches = useMemo(
    () => (needle ? log.lines.filter((l) => l.text.toLowerCase().includes(needle)).length : 0),
    [log.lines, needle],
  );
  const shown =
    onlyMatches && needle ? log.lines.filter((l) => l.text.toLowerCase().includes(needle)) : log.lines;
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [shown.length, follow]);
  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
    if (atEnd !== follow) setFollow(atEnd);
  };
  return (
    <div className="log card">
      <div className="log-head">
        <h2>Log</h2>
        <span className="muted" role="status" aria-live="polite" data-testid="log-state">
          {log.end
            ? `complete: ${log.end.lineCount} lines`
            : log.error
              ? 'stopped'
              : ended
                ? `${log.lines.length} lines, sealing…`
                : `following live · ${log.lines.length} lines`}
        </span>
        <span className="spacer" />
        <label className="inline">
          <span className="sr-only">Search the log</span>
          <input
            type="search"
            placeholder="Search the log"
            value={search}
            onChange={(e) => setSearch(e.target.value)}
          />
        </label>
        {needle && (
          <>
            <span className="muted">{matches} matching</span>
            <label className="inline">
              <input
                type="checkbox"
                checked={onlyMatches}
                onChange={(e) => setOnlyMatches(e.target.checked)}
              />{' '}
              only matching lines
            </label>
          </>
        )}
        <button
          type="button"
          className="secondary"
          onClick={() => {
            setFollow(true);
            if (box.current) box.current.scrollTop = box.current.scrollHeight;
          }}
        >
          Jump to end
        </button>
        <a className="button secondary" href={dashboard.logDownloadUrl(ws.id, runId)} download>
          Download
        </a>
      </div>
      <ErrorBox error={log.error} />
      <div
        className="log-lines"
        ref={box}
        onScroll={onScroll}
        tabIndex={0}
        role="log"
        aria-label="Run log"
        data-testid="log"
      >
        {shown.length === 0 && (
          <p className="muted">{log.end ? 'This run printed nothing.' : 'Waiting for the first line…'}</p>
        )}
        {shown.map((l) => (
          <div key={l.seq} className={l.stream === 'stderr' ? 'line err' : 'line'}>
            <span className="ln" aria-hidden="true">
              {l.seq}
            </span>
            <span className="tx">{needle ? <Highlight text={l.text} needle={needle} /> : l.text}</span>
          </div>
        ))}
      </div>
    </div>
  );
}

function Highlight({ text, needle }: { text: string; needle: string }) {
  const parts: ReactNode[] = [];
  const lower = text.toLowerCase();
  let i = 0;
  let k = 0;
  for (;;) {
    const j = lower.indexOf(needle, i);
    if (j < 0) break;
    parts.push(text.slice(i, j), <mark key={k++}>{text.slice(j, j + needle.length)}</mark>);
    i = j + needle.length;
  }
  parts.push(text.slice(i));
  return <>{parts}</>;
}
