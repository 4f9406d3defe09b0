import { useEffect, useState, type FormEvent } from 'react';
import type { RunSummary } from '../../../libs/client/src/dashboard.js';
import { account, dashboard, runway } from '../api.js';
import { RunsTable } from '../components.js';
import { useApp, wsPath } from '../context.js';
import { useDebounced, useLiveEvents } from '../live.js';
import { Link, navigate } from '../router.js';
import {
  Empty,
  ErrorBox,
  Loading,
  PageHeader,
  Show,
  StatusBadge,
  errorBoxText,
  formatTime,
  relativeTime,
  useAction,
  useAsync,
} from '../ui.js';

export function JobsPage() {
  const { ws, canWrite } = useApp();
  const jobs = useAsync(() => dashboard.overview(ws.id, { recent: 1 }).then((o) => o.jobs), [ws.id]);
  const [filter, setFilter] = useState('');
  const refetch = useDebounced(jobs.reload, 300);
  useLiveEvents(ws.id, (m) => {
    if (m.type === 'job.changed' || m.type === 'run.status') refetch();
  });
  return (
    <section>
      <PageHeader title="Jobs">
        {canWrite && (
          <Link className="button" href={wsPath(ws.id, '/jobs/new')}>
            Create job
          </Link>
        )}
      </PageHeader>
      <Show a={jobs} what="jobs">
        {(list) =>
          list.length === 0 ? (
            <Empty>
              <p>No jobs yet.</p>
              {canWrite && <Link href={wsPath(ws.id, '/jobs/new')}>Create a job</Link>}
            </Empty>
          ) : (
            <>
              <label className="filter">
                Filter by name
                <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} />
              </label>
              <ul className="cards">
                {list
                  .filter((j) => j.name.toLowerCase().includes(filter.toLowerCase()))
                  .map((j) => (
                    <li key={j.id} className="card job-card">
                      <h2>
                        <Link href={wsPath(ws.id, `/jobs/${j.id}`)}>{j.name}</Link>
                      </h2>
                      <p className="muted">
                        {j.kind} · <code>{j.entry_point}</code>
                      </p>
                      {j.description && <p>{j.description}</p>}
                      <p>
                        {j.schedule ? (
                          <>
                            <code>{j.schedule}</code> ({j.timezone}){' '}
                            {!j.active && <span className="badge">paused</span>}
                            {j.next_fire_at && j.active && <> · next {relativeTime(j.next_fire_at)}</>}
                          </>
                        ) : (
                          <span className="muted">No schedule: runs on demand</span>
                        )}
                      </p>
                      <p>
                        Last run:{' '}
                        {j.last_run ? (
                          <Link href={wsPath(ws.id, `/runs/${j.last_run.id}`)}>
                            <StatusBadge status={j.last_run.status} /> #{j.last_run.number},{' '}
                            {relativeTime(j.last_run.created_at)}
                          </Link>
                        ) : (
                          <span className="muted">never</span>
                        )}
                      </p>
                    </li>
                  ))}
              </ul>
            </>
          )
        }
      </Show>
    </section>
  );
}

export function JobDetailPage({ id }: { id: string }) {
  const { ws, canWrite } = useApp();
  const job = useAsync(() => runway.getJob(ws.id, id), [ws.id, id]);
  const runs = useRunHistory(ws.id, id);
  const run = useAction();
  const refetch = useDebounced(() => {
    job.reload();
    runs.refresh();
  }, 300);
  useLiveEvents(ws.id, (m) => {
    if ((m.type === 'run.status' || m.type === 'job.changed') && m.job_id === id) refetch();
  });
  return (
    <section>
      <Show a={job} what="the job">
        {(j) => (
          <>
            <PageHeader title={j.name}>
              {canWrite && (
                <button
                  type="button"
                  disabled={run.busy}
                  onClick={() =>
                    void run.run(async () => {
                      const r = await runway.requestRun(ws.id, j.id);
                      navigate(wsPath(ws.id, `/runs/${r.id}`));
                    })
                  }
                >
                  {run.busy ? 'Starting…' : 'Run now'}
                </button>
              )}
            </PageHeader>
            <ErrorBox error={run.error} />
            <dl className="meta">
              <dt>Entry point</dt>
              <dd>
                <code>{j.entry_point}</code>
              </dd>
              <dt>Kind</dt>
              <dd>{j.kind}</dd>
              {j.description && (
                <>
                  <dt>Description</dt>
                  <dd>{j.description}</dd>
                </>
              )}
              <dt>Version</dt>
              <dd>{j.version}</dd>
              <dt>Timeout</dt>
              <dd>{j.timeout_seconds ? `${j.timeout_seconds} s` : 'none'}</dd>
              <dt>Updated</dt>
              <dd>{formatTime(j.date_updated)}</dd>
            </dl>
            {j.kind === 'interactive' && (
              <AppPanel
                jobId={j.id}
                url={j.url}
                linkEnabled={j.public_link_enabled ?? false}
                canWrite={canWrite}
                onChanged={job.reload}
              />
            )}
            <ScheduleEditor
              jobId={j.id}
              schedule={j.schedule}
              timezone={j.timezone ?? 'UTC'}
              active={j.active}
              nextRun={j.next_scheduled_run}
              canWrite={canWrite}
              onSaved={job.reload}
            />
          </>
        )}
      </Show>
      <h2>Run history</h2>
      {runs.error && <ErrorBox error={runs.error} onRetry={runs.refresh} />}
      {runs.items === undefined ? (
        !runs.error && <Loading what="runs" />
      ) : (
        <>
          <RunsTable runs={runs.items} empty="This job has not run yet." />
          {runs.next && (
            <button type="button" className="secondary" disabled={runs.loading} onClick={runs.more}>
              {runs.loading ? 'Loading…' : 'Load more'}
            </button>
          )}
        </>
      )}
    </section>
  );
}

function useRunHistory(ws: string, jobId: string) {
  const [items, setItems] = useState<RunSummary[]>();
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    dashboard.runs(ws, { job: jobId, limit: 20 }).then(
      (p) => {
        if (!live) return;
        setItems(p.items);
        setNext(p.next_cursor);
        setError(undefined);
        setLoading(false);
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
  }, [ws, jobId, tick]);
  const more = () => {
    if (!next) return;
    setLoading(true);
    dashboard.runs(ws, { job: jobId, limit: 20, cursor: next }).then(
      (p) => {
        setItems((old) => [...(old ?? []), ...p.items]);
        setNext(p.next_cursor);
        setLoading(false);
      },
      (err: unknown) => {
        setError(errorBoxText(err));
        setLoading(false);
      },
    );
  };
  return { items, next, loading, error, more, refresh: () => setTick((t) => t + 1) };
}

const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;

/** Change, pause or clear a schedule, with the next fire times previewed in the job's zone. */
function ScheduleEditor(props: {
  jobId: string;
  schedule: string | null;
  timezone: string;
  active: boolean;
  nextRun: string | null;
  canWrite: boolean;
  onSaved: () => void;
}) {
  const { ws } = useApp();
  const [cron, setCron] = useState(props.schedule ?? '');
  const [tz, setTz] = useState(props.timezone);
  const [editing, setEditing] = useState(false);
  const save = useAction();
  const preview = useSchedulePreview(
    ws.id,
    editing ? cron : (props.schedule ?? ''),
    editing ? tz : props.timezone,
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void save.run(async () => {
      await dashboard.setSchedule(ws.id, props.jobId, { schedule: cron.trim(), timezone: tz.trim() });
      setEditing(false);
      props.onSaved();
    });
  };
  return (
    <div className="card schedule">
      <h2>Schedule</h2>
      {!editing && (
        <p>
          {props.schedule ? (
            <>
              <code>{props.schedule}</code> in <strong>{props.timezone}</strong>{' '}
              {props.active ? (
                <span className="badge status-running">active</span>
              ) : (
                <span className="badge">paused</span>
              )}
            </>
          ) : (
            'No schedule: this job runs only when someone starts it.'
          )}
        </p>
      )}
      {editing && (
        <form onSubmit={submit} className="schedule-form">
          <label>
            Cron expression
            <input
              value={cron}
              onChange={(e) => setCron(e.target.value)}
              placeholder="*/15 * * * *"
              aria-describedby="cron-help"
              aria-invalid={preview.error ? true : undefined}
              required
              spellCheck={false}
            />
          </label>
          <label>
            Time zone
            <input
              value={tz}
              onChange={(e) => setTz(e.target.value)}
              list="zones"
              required
              spellCheck={false}
            />
          </label>
          <datalist id="zones">
            {[
              'UTC',
              browserZone(),
              'Europe/Berlin',
              'Europe/London',
              'America/New_York',
              'America/Los_Angeles',
              'Asia/Tokyo',
            ].map((z) => (
              <option key={z} value={z} />
            ))}
          </datalist>
          <p id="cron-help" className="muted small">
            Five fields: minute hour day-of-month month day-of-week (e.g. <code>0 9 * * 1-5</code>: weekdays
            at 09:00).
          </p>
          <div className="row">
            <button
              type="submit"
              disabled={save.busy || Boolean(preview.error) || preview.value?.too_frequent}
            >
              {save.busy ? 'Saving…' : 'Save schedule'}
            </button>
            <button
              type="button"
              className="secondary"
              onClick={() => {
                setEditing(false);
                setCron(props.schedule ?? '');
                setTz(props.timezone);
                save.setError(undefined);
              }}
            >
              Cancel
            </button>
          </div>
        </form>
      )}
      <SchedulePreviewBox preview={preview} />
      <ErrorBox error={save.error} />
      {props.canWrite && !editing && (
        <div className="row">
          <button type="button" className="secondary" onClick={() => setEditing(true)}>
            {props.schedule ? 'Change schedule' : 'Add a schedule'}
          </button>
          {props.schedule && (
            <>
              <button
                type="button"
                className="secondary"
                disabled={save.busy}
                onClick={() =>
                  void save.run(async () => {
                    await dashboard.setSchedule(ws.id, props.jobId, { active: !props.active });
                    props.onSaved();
                  })
                }
              >
                {props.active ? 'Pause' : 'Resume'}
              </button>
              <button
                type="button"
                className="danger"
                disabled={save.busy}
                onClick={() =>
                  void save.run(async () => {
                    await dashboard.setSchedule(ws.id, props.jobId, { schedule: null });
                    setCron('');
                    props.onSaved();
                  })
                }
              >
                Clear schedule
              </button>
            </>
          )}
        </div>
      )}
    </div>
  );
}

interface PreviewState {
  loading: boolean;
  value: Awaited<ReturnType<typeof dashboard.schedulePreview>> | undefined;
  error: string | undefined;
}

function useSchedulePreview(ws: string, cron: string, tz: string): PreviewState {
  const [state, setState] = useState<PreviewState>({ loading: false, value: undefined, error: undefined });
  useEffect(() => {
    if (!cron.trim()) {
      setState({ loading: false, value: undefined, error: undefined });
      return;
    }
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    const t = setTimeout(() => {
      dashboard.schedulePreview(ws, { cron: cron.trim(), tz: tz.trim() || 'UTC', count: 5 }).then(
        (value) => live && setState({ loading: false, value, error: undefined }),
        (err: unknown) => live && setState({ loading: false, value: undefined, error: errorBoxText(err) }),
      );
    }, 250);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [ws, cron, tz]);
  return state;
}

function SchedulePreviewBox({ preview }: { preview: PreviewState }) {
  if (preview.error)
    return (
      <p className="error" role="alert" data-testid="cron-error">
        {preview.error}
      </p>
    );
  if (!preview.value) return preview.loading ? <Loading what="the next runs" /> : null;
  const p = preview.value;
  return (
    <div className="preview" aria-live="polite" data-testid="schedule-preview">
      <h3>Next runs ({p.timezone})</h3>
      <ol>
        {p.fires.map((f) => (
          <li key={f.at}>
            <time dateTime={f.at}>{f.local}</time> <span className="muted">UTC{f.utc_offset}</span>
          </li>
        ))}
      </ol>
      {p.too_frequent && (
        <p className="error" role="alert">
          This fires every {p.shortest_interval_seconds} s: more often than this Runway allows (at least{' '}
          {p.min_interval_seconds} s apart).
        </p>
      )}
    </div>
  );
}

export function JobCreatePage() {
  const { ws, canWrite } = useApp();
  const files = useAsync(async () => {
    const latest = await runway.latestDeployment(ws.id);
    if (!latest) return [];
    const f = await account.deploymentFiles(ws.id, latest.version);
    return f.items.map((x) => x.path).filter((p) => /\.py$/.test(p));
  }, [ws.id]);
  const [name, setName] = useState('');
  const [entry, setEntry] = useState('');
  const [kind, setKind] = useState<'batch' | 'interactive'>('batch');
  const [description, setDescription] = useState('');
  const [cron, setCron] = useState('');
  const [tz, setTz] = useState('UTC');
  const [timeout, setTimeoutS] = useState('');
  const action = useAction();
  const preview = useSchedulePreview(ws.id, cron, tz);
  if (!canWrite)
    return (
      <section>
        <PageHeader title="Create a job" />
        <ErrorBox error="Viewers cannot create jobs: ask an owner for the member role." />
      </section>
    );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const job = await dashboard.createJob(ws.id, {
        name: name.trim(),
        entry_point: entry.trim(),
        kind,
        description,
        ...(cron.trim() ? { schedule: cron.trim(), timezone: tz.trim() } : {}),
        ...(timeout.trim() ? { timeout_seconds: Number(timeout) } : {}),
      });
      navigate(wsPath(ws.id, `/jobs/${job.id}`));
    });
  };
  return (
    <section className="narrow">
      <PageHeader title="Create a job" />
      <form className="card" onSubmit={submit}>
        <label>
          Name
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            required
            maxLength={500}
            placeholder="nightly-load"
          />
        </label>
        <label>
          Entry point (a Python file of the latest deployment)
          <input
            value={entry}
            onChange={(e) => setEntry(e.target.value)}
            list="entry-points"
            required
            spellCheck={false}
          />
        </label>
        <datalist id="entry-points">
          {(files.value ?? []).map((p) => (
            <option key={p} value={p} />
          ))}
        </datalist>
        {files.loading && <p className="muted small">Loading the deployment's files…</p>}
        {files.value && files.value.length === 0 && (
          <p className="notice small">
            Nothing is deployed yet: deploy your workspace first (dlt runtime deploy).
          </p>
        )}
        {files.error && <ErrorBox error={files.error} />}
        <fieldset>
          <legend>Kind</legend>
          <label className="inline">
            <input type="radio" name="kind" checked={kind === 'batch'} onChange={() => setKind('batch')} />{' '}
            Batch (a pipeline run)
          </label>
          <label className="inline">
            <input
              type="radio"
              name="kind"
              checked={kind === 'interactive'}
              onChange={() => setKind('interactive')}
            />{' '}
            Interactive (a marimo notebook)
          </label>
        </fieldset>
        <label>
          Description
          <textarea value={description} onChange={(e) => setDescription(e.target.value)} rows={2} />
        </label>
        <label>
          Schedule (cron, optional)
          <input
            value={cron}
            onChange={(e) => setCron(e.target.value)}
            placeholder="0 6 * * *"
            spellCheck={false}
          />
        </label>
        <label>
          Time zone
          <input value={tz} onChange={(e) => setTz(e.target.value)} spellCheck={false} />
        </label>
        <SchedulePreviewBox preview={preview} />
        <label>
          Timeout in seconds (optional)
          <input type="number" min={1} value={timeout} onChange={(e) => setTimeoutS(e.target.value)} />
        </label>
        <ErrorBox error={action.error} />
        <button type="submit" disabled={action.busy}>
          {action.busy ? 'Creating…' : 'Create job'}
        </button>
      </form>
    </section>
  );
}

/**
 * An interactive job's app: its address for members, and its public link (enable, rotate, revoke).
 * The link's URL exists only in the answer that made it (only its hash is stored), so it is shown
 * once, with a copy button.
 */
function AppPanel(props: {
  jobId: string;
  url: string;
  linkEnabled: boolean;
  canWrite: boolean;
  onChanged: () => void;
}) {
  const { ws } = useApp();
  const change = useAction();
  const [made, setMade] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const act = (action: 'enable' | 'rotate' | 'revoke') =>
    void change.run(async () => {
      if (
        action === 'revoke' &&
        !window.confirm('Revoke the public link? Pages open through it close at once.')
      )
        return;
      const r = await runway.changePublicLink(ws.id, props.jobId, action);
      setMade(r.public_url);
      setCopied(false);
      props.onChanged();
    });
  const copy = (text: string) =>
    void navigator.clipboard.writeText(text).then(
      () => setCopied(true),
      () => change.setError('the browser did not allow copying: select the link and copy it'),
    );
  return (
    <section aria-labelledby="app-heading">
      <h2 id="app-heading">App</h2>
      <p>
        Members open it at{' '}
        <a href={props.url} target="_blank" rel="noreferrer">
          {props.url}
        </a>
        . A visit starts it when it is not running.
      </p>
      <h3>Public link</h3>
      <p>
        {props.linkEnabled
          ? 'Enabled: anyone with the link opens this app (and nothing else) without signing in.'
          : 'No public link: only members of the workspace open the app.'}
      </p>
      {made && (
        <div className="notice" role="status">
          <label htmlFor="public-link">Public link (shown once: copy it now)</label>
          <input id="public-link" readOnly value={made} onFocus={(e) => e.currentTarget.select()} />
          <button type="button" className="secondary" onClick={() => copy(made)}>
            {copied ? 'Copied' : 'Copy'}
          </button>
        </div>
      )}
      <ErrorBox error={change.error} />
      {props.canWrite && (
        <div className="actions">
          {props.linkEnabled ? (
            <>
              <button type="button" disabled={change.busy} onClick={() => act('rotate')}>
                Rotate link
              </button>
              <button type="button" className="danger" disabled={change.busy} onClick={() => act('revoke')}>
                Revoke link
              </button>
            </>
          ) : (
            <button type="button" disabled={change.busy} onClick={() => act('enable')}>
              {change.busy ? 'Working…' : 'Enable public link'}
            </button>
          )}
        </div>
      )}
    </section>
  );
}
