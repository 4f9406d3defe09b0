import { useEffect, useState, type FormEvent } from 'react';
import { account } from '../api.js';
import { navigate } from '../router.js';
import { ErrorBox, useAction, useAsync } from '../ui.js';

/** A same-origin path to come back to after signing in (anything else: the start page). */
const safeNext = (next: string) =>
  next.startsWith('/') && !next.startsWith('//') && next !== '/signin' ? next : '/';

export function SignInPage({
  next,
  onSignedIn,
  notice,
}: {
  next: string;
  onSignedIn: () => void;
  notice?: string;
}) {
  const providers = useAsync(() => account.providers(), []);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const action = useAction();
  useEffect(() => {
    document.title = 'Sign in · Runway';
  }, []);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      await account.signIn(email.trim(), password);
      setPassword('');
      const to = safeNext(next);
      // An app behind the proxy (/i/…, /p/…) is not a page of this app: load it for real.
      if (/^\/(i|p)\//.test(to)) return window.location.assign(to);
      navigate(to, { replace: true });
      onSignedIn();
    });
  };
  const oidc = providers.value?.oidc;
  return (
    <main className="signin" id="main">
      <form className="card" onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">
          <span aria-hidden="true">▲</span> Sign in to Runway
        </h1>
        {notice && !/not signed in|no session|missing/i.test(notice) && <p className="notice">{notice}</p>}
        <label>
          Email
          <input
            type="email"
            name="email"
            autoComplete="username"
            required
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
        </label>
        <label>
          Password
          <input
            type="password"
            name="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <ErrorBox error={action.error} />
        <button type="submit" disabled={action.busy}>
          {action.busy ? 'Signing in…' : 'Sign in'}
        </button>
        {providers.loading && <p className="muted">Checking single sign-on…</p>}
        {oidc && (
          <>
            <p className="or">or</p>
            <a
              className="button secondary"
              href={`/auth/oidc/start?return_to=${encodeURIComponent(safeNext(next))}`}
            >
              Sign in with {oidc.name}
            </a>
          </>
        )}
        <p className="muted small">
          No account? An administrator creates one with <code>runway admin users create --password</code>.
        </p>
      </form>
    </main>
  );
}
