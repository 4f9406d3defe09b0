import { useEffect, useMemo, type ReactNode } from 'react';
import { account } from './api.js';
import { Ctx, wsPath, type AppContext } from './context.js';
import { DevicePage } from './pages/device.js';
import { DeploymentsPage } from './pages/deployments.js';
import { ConfigurationPage } from './pages/configuration.js';
import { JobCreatePage, JobDetailPage, JobsPage } from './pages/jobs.js';
import { OverviewPage } from './pages/overview.js';
import { PipelineDetailPage, PipelinesPage } from './pages/pipelines.js';
import { RunDetailPage, RunsPage } from './pages/runs.js';
import { SettingsPage } from './pages/settings.js';
import { SignInPage } from './pages/signin.js';
import { Link, match, navigate, useLocation } from './router.js';
import { ErrorBox, Loading, useAction, useAsync } from './ui.js';

const NAV: { path: string; label: string }[] = [
  { path: '', label: 'Overview' },
  { path: '/jobs', label: 'Jobs' },
  { path: '/runs', label: 'Runs' },
  { path: '/deployments', label: 'Deployments' },
  { path: '/configuration', label: 'Configuration' },
  { path: '/pipelines', label: 'Pipelines' },
  { path: '/settings', label: 'Settings' },
];

export function App() {
  const loc = useLocation();
  const session = useAsync(() => account.session(), []);
  const here = `${loc.path}${loc.query.size ? `?${loc.query.toString()}` : ''}`;

  if (loc.path === '/signin') {
    return <SignInPage next={loc.query.get('next') ?? '/'} onSignedIn={session.reload} />;
  }
  if (session.loading && !session.value) return <Loading what="your session" />;
  if (session.error) {
    // Not signed in (401): the sign-in page, coming back here afterwards.
    if (session.status === 401) {
      return <SignInPage next={here} onSignedIn={session.reload} notice={session.error} />;
    }
    return (
      <main className="center">
        <ErrorBox error={session.error} onRetry={session.reload} />
      </main>
    );
  }
  const s = session.value;
  if (!s) return <Loading what="your session" />;

  if (loc.path === '/device') {
    return (
      <Shell session={s} wsId={undefined} onSession={session.reload}>
        <DevicePage code={loc.query.get('code') ?? ''} />
      </Shell>
    );
  }

  const first = s.workspaces[0];
  const wsMatch = /^\/w\/([^/]+)(\/.*)?$/.exec(loc.path);
  if (!wsMatch) {
    if (!first)
      return (
        <Shell session={s} wsId={undefined} onSession={session.reload}>
          <main className="center">
            <p>You are not a member of any workspace yet: ask an owner to invite you.</p>
          </main>
        </Shell>
      );
    return <Redirect to={wsPath(first.id)} />;
  }
  const wsId = decodeURIComponent(wsMatch[1] ?? '');
  const rest = wsMatch[2] ?? '/';
  const ws = s.workspaces.find((w) => w.id === wsId);
  if (!ws)
    return (
      <Shell session={s} wsId={undefined} onSession={session.reload}>
        <main className="center">
          <ErrorBox error={`You are not a member of the workspace ${wsId}.`} />
          {first && <Link href={wsPath(first.id)}>Go to {first.name}</Link>}
        </main>
      </Shell>
    );
  return <Workspace session={s} ws={ws} rest={rest} onSession={session.reload} />;
}

function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, { replace: true }), [to]);
  return <Loading what="the page" />;
}

function Workspace({
  session,
  ws,
  rest,
  onSession,
}: {
  session: AppContext['session'];
  ws: AppContext['ws'];
  rest: string;
  onSession: () => void;
}) {
  const ctx = useMemo<AppContext>(
    () => ({
      session,
      ws,
      canWrite: ws.role !== 'viewer',
      isOwner: ws.role === 'owner',
      refreshSession: onSession,
    }),
    [session, ws, onSession],
  );
  let page: ReactNode;
  let m: Record<string, string> | undefined;
  if (rest === '/' || rest === '') page = <OverviewPage />;
  else if (rest === '/jobs') page = <JobsPage />;
  else if (rest === '/jobs/new') page = <JobCreatePage />;
  else if ((m = match('/jobs/:id', rest))) page = <JobDetailPage id={m.id ?? ''} />;
  else if (rest === '/runs') page = <RunsPage />;
  else if ((m = match('/runs/:id', rest))) page = <RunDetailPage id={m.id ?? ''} />;
  else if (rest === '/deployments') page = <DeploymentsPage />;
  else if (rest === '/configuration') page = <ConfigurationPage />;
  else if (rest === '/pipelines') page = <PipelinesPage />;
  else if ((m = match('/pipelines/:name', rest))) page = <PipelineDetailPage name={m.name ?? ''} />;
  else if (rest === '/settings') page = <SettingsPage />;
  else
    page = (
      <div className="empty">
        <p>There is no page at this address.</p>
        <Link href={wsPath(ws.id)}>Back to the overview</Link>
      </div>
    );
  return (
    <Ctx.Provider value={ctx}>
      <Shell session={session} wsId={ws.id} rest={rest} onSession={onSession}>
        {page}
      </Shell>
    </Ctx.Provider>
  );
}

function Shell({
  session,
  wsId,
  rest = '',
  onSession,
  children,
}: {
  session: AppContext['session'];
  wsId: string | undefined;
  rest?: string;
  onSession: () => void;
  children: ReactNode;
}) {
  const signOut = useAction();
  const ws = session.workspaces.find((w) => w.id === wsId);
  const section = '/' + (rest.split('/')[1] ?? '');
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link href="/" className="brand" aria-label="Runway home">
          <span aria-hidden="true">▲</span> Runway
        </Link>
        {session.workspaces.length > 1 ? (
          <label className="switcher">
            <span className="sr-only">Workspace</span>
            <select
              aria-label="Workspace"
              value={wsId ?? ''}
              onChange={(e) => navigate(wsPath(e.target.value))}
            >
              {!wsId && <option value="">Choose a workspace</option>}
              {session.workspaces.map((w) => (
                <option key={w.id} value={w.id}>
                  {w.name} ({w.role})
                </option>
              ))}
            </select>
          </label>
        ) : (
          ws && <span className="ws-name">{ws.name}</span>
        )}
        {ws?.role === 'viewer' && <span className="badge viewer">read-only</span>}
        <span className="spacer" />
        <span className="user" title={session.user.email}>
          {session.user.email}
        </span>
        <button
          type="button"
          className="secondary"
          disabled={signOut.busy}
          onClick={() =>
            void signOut.run(async () => {
              await account.signOut();
              navigate('/signin', { replace: true });
              onSession();
            })
          }
        >
          {signOut.busy ? 'Signing out…' : 'Sign out'}
        </button>
      </header>
      {signOut.error && <ErrorBox error={signOut.error} />}
      {wsId && (
        <nav className="sidenav" aria-label="Sections">
          <ul>
            {NAV.map((n) => {
              const active = n.path === '' ? section === '/' : section === n.path;
              return (
                <li key={n.path}>
                  <Link href={wsPath(wsId, n.path)} aria-current={active ? 'page' : undefined}>
                    {n.label}
                  </Link>
                </li>
              );
            })}
          </ul>
        </nav>
      )}
      <main id="main" className={wsId ? 'content' : 'content wide'}>
        {children}
      </main>
    </div>
  );
}
