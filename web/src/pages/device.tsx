import { useEffect, useState, type FormEvent } from 'react';
import { account } from '../api.js';
import { Link, navigate } from '../router.js';
import { ErrorBox, PageHeader, Show, formatTime, useAction, useAsync } from '../ui.js';

/** `/device?code=XXXX-XXXX`: a CLI's login waiting for a signed-in person's approval. */
export function DevicePage({ code }: { code: string }) {
  const [typed, setTyped] = useState(code);
  useEffect(() => setTyped(code), [code]);
  if (!code)
    return (
      <section className="narrow">
        <PageHeader title="Approve a CLI login" />
        <form
          className="card"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            navigate(`/device?code=${encodeURIComponent(typed.trim().toUpperCase())}`);
          }}
        >
          <label>
            The code your terminal shows
            <input
              value={typed}
              onChange={(e) => setTyped(e.target.value)}
              placeholder="BCDF-GHJK"
              required
            />
          </label>
          <button type="submit">Continue</button>
        </form>
      </section>
    );
  return <DeviceCode code={code} />;
}

function DeviceCode({ code }: { code: string }) {
  const login = useAsync(() => account.device(code), [code]);
  const action = useAction();
  const [done, setDone] = useState<'approved' | 'denied'>();
  return (
    <section className="narrow">
      <PageHeader title="Approve a CLI login" />
      <Show a={login} what="the login request">
        {(l) => (
          <div className="card device">
            <p>
              A command-line client asks to sign in to Runway as you with the code{' '}
              <strong className="code">{l.user_code}</strong>.
            </p>
            <dl className="meta">
              <dt>Client</dt>
              <dd>{l.client?.user_agent ?? 'unknown'}</dd>
              <dt>From address</dt>
              <dd>{l.client?.ip ?? 'unknown'}</dd>
              <dt>Asked at</dt>
              <dd>{formatTime(l.client?.requested_at)}</dd>
              <dt>Status</dt>
              <dd data-testid="device-status">{done ?? l.status}</dd>
            </dl>
            {done === 'approved' && (
              <p className="success" role="status">
                Approved: the CLI is now signed in as you. You can close this page.
              </p>
            )}
            {done === 'denied' && (
              <p className="notice" role="status">
                Denied: the CLI was refused.
              </p>
            )}
            {!done && l.status === 'pending' && (
              <div className="row">
                <button
                  type="button"
                  disabled={action.busy}
                  onClick={() =>
                    void action.run(async () => {
                      await account.approveDevice(l.user_code);
                      setDone('approved');
                    })
                  }
                >
                  Approve
                </button>
                <button
                  type="button"
                  className="danger"
                  disabled={action.busy}
                  onClick={() =>
                    void action.run(async () => {
                      await account.denyDevice(l.user_code);
                      setDone('denied');
                    })
                  }
                >
                  Deny
                </button>
              </div>
            )}
            {!done && l.status !== 'pending' && (
              <p className="muted">This login is {l.status}: nothing to approve.</p>
            )}
            <p className="muted small">
              Only approve a code you started yourself, in your own terminal, just now.
            </p>
            <ErrorBox error={action.error} />
            <p>
              <Link href="/">Back to the dashboard</Link>
            </p>
          </div>
        )}
      </Show>
    </section>
  );
}
