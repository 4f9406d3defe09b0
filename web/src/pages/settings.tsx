import { useState, type FormEvent } from 'react';
import type { Role } from '../../../libs/client/src/account.js';
import { account } from '../api.js';
import { useApp } from '../context.js';
import { navigate } from '../router.js';
import { Empty, ErrorBox, PageHeader, Show, formatTime, relativeTime, useAction, useAsync } from '../ui.js';

const ROLES: Role[] = ['owner', 'member', 'viewer'];

export function SettingsPage() {
  return (
    <section>
      <PageHeader title="Settings" />
      <WorkspaceName />
      <Members />
      <Tokens />
      <Sessions />
      <Password />
    </section>
  );
}

function WorkspaceName() {
  const { ws, isOwner, refreshSession } = useApp();
  const [name, setName] = useState(ws.name);
  const save = useAction();
  const [saved, setSaved] = useState(false);
  return (
    <div className="card">
      <h2>Workspace</h2>
      {isOwner ? (
        <form
          className="row"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            setSaved(false);
            void save.run(async () => {
              await account.renameWorkspace(ws.id, name.trim());
              setSaved(true);
              refreshSession();
            });
          }}
        >
          <label>
            Name
            <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
          </label>
          <button type="submit" disabled={save.busy || name.trim() === ws.name}>
            {save.busy ? 'Saving…' : 'Rename'}
          </button>
          {saved && <span role="status">Saved.</span>}
        </form>
      ) : (
        <p>
          <strong>{ws.name}</strong> <span className="muted">(your role: {ws.role})</span>
        </p>
      )}
      <p className="muted small">
        Id <code>{ws.id}</code>
      </p>
      <ErrorBox error={save.error} />
    </div>
  );
}

function Members() {
  const { ws, isOwner, session } = useApp();
  const members = useAsync(() => account.members(ws.id), [ws.id]);
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('member');
  const action = useAction();
  return (
    <div className="card">
      <h2>Members</h2>
      <Show a={members} what="members">
        {(list) =>
          list.length === 0 ? (
            <Empty>No members.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Email</th>
                    <th scope="col">Role</th>
                    {isOwner && <th scope="col">Actions</th>}
                  </tr>
                </thead>
                <tbody>
                  {list.map((m) => (
                    <tr key={m.user_id}>
                      <td>
                        {m.email} {m.user_id === session.user.id && <span className="muted">(you)</span>}
                      </td>
                      <td>
                        {isOwner ? (
                          <select
                            aria-label={`Role of ${m.email}`}
                            value={m.role}
                            disabled={action.busy}
                            onChange={(e) => {
                              const r = e.target.value as Role;
                              void action.run(async () => {
                                await account.setMemberRole(ws.id, m.user_id, r);
                                members.reload();
                              });
                            }}
                          >
                            {ROLES.map((r) => (
                              <option key={r} value={r}>
                                {r}
                              </option>
                            ))}
                          </select>
                        ) : (
                          m.role
                        )}
                      </td>
                      {isOwner && (
                        <td>
                          <button
                            type="button"
                            className="danger small"
                            disabled={action.busy}
                            aria-label={`Remove ${m.email}`}
                            onClick={() => {
                              if (!window.confirm(`Remove ${m.email} from ${ws.name}?`)) return;
                              void action.run(async () => {
                                await account.removeMember(ws.id, m.user_id);
                                members.reload();
                              });
                            }}
                          >
                            Remove
                          </button>
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Show>
      <ErrorBox error={action.error} />
      {isOwner && (
        <form
          className="row"
          aria-label="Invite a member"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            void action.run(async () => {
              await account.addMember(ws.id, email.trim(), role);
              setEmail('');
              members.reload();
            });
          }}
        >
          <label>
            Invite by email
            <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} required />
          </label>
          <label>
            Role
            <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" disabled={action.busy}>
            Add member
          </button>
        </form>
      )}
      <p className="muted small">Viewers can read everything in the workspace and change nothing.</p>
    </div>
  );
}

function Tokens() {
  const tokens = useAsync(() => account.tokens(), []);
  const [name, setName] = useState('');
  const [days, setDays] = useState('90');
  const [created, setCreated] = useState<{ name: string; token: string }>();
  const action = useAction();
  return (
    <div className="card">
      <h2>API tokens</h2>
      <p className="muted small">
        For scripts and CI: send as <code>Authorization: Bearer …</code>.
      </p>
      {created && (
        <div className="notice" role="status">
          <p>
            Token <strong>{created.name}</strong> created. Copy it now: it is shown only this once.
          </p>
          <div className="row">
            <input
              readOnly
              value={created.token}
              aria-label="The new token"
              onFocus={(e) => e.target.select()}
            />
            <button
              type="button"
              className="secondary"
              onClick={() => void navigator.clipboard?.writeText(created.token)}
            >
              Copy
            </button>
            <button type="button" className="link" onClick={() => setCreated(undefined)}>
              Done
            </button>
          </div>
        </div>
      )}
      <Show a={tokens} what="tokens">
        {(t) =>
          t.items.length === 0 ? (
            <Empty>No tokens.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">State</th>
                    <th scope="col">Created</th>
                    <th scope="col">Expires</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {t.items.map((k) => (
                    <tr key={k.id}>
                      <td>{k.name}</td>
                      <td>{k.state}</td>
                      <td>{formatTime(k.date_added)}</td>
                      <td>{k.expires_at ? relativeTime(k.expires_at) : 'never'}</td>
                      <td>
                        {k.state === 'active' && (
                          <button
                            type="button"
                            className="danger small"
                            aria-label={`Revoke ${k.name}`}
                            disabled={action.busy}
                            onClick={() =>
                              void action.run(async () => {
                                await account.revokeToken(k.id);
                                tokens.reload();
                              })
                            }
                          >
                            Revoke
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Show>
      <ErrorBox error={action.error} />
      <form
        className="row"
        aria-label="Create a token"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void action.run(async () => {
            const t = await account.createToken(name.trim(), days ? Number(days) : undefined);
            setCreated({ name: name.trim(), token: t.token });
            setName('');
            tokens.reload();
          });
        }}
      >
        <label>
          Token name
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
        </label>
        <label>
          Expires in (days, empty: never)
          <input type="number" min={1} value={days} onChange={(e) => setDays(e.target.value)} />
        </label>
        <button type="submit" disabled={action.busy}>
          Create token
        </button>
      </form>
    </div>
  );
}

function Sessions() {
  const sessions = useAsync(() => account.mySessions(), []);
  const action = useAction();
  return (
    <div className="card">
      <h2>Your sessions</h2>
      <Show a={sessions} what="your sessions">
        {(s) =>
          s.items.length === 0 ? (
            <Empty>No active sessions.</Empty>
          ) : (
            <ul className="sessions">
              {s.items.map((x) => (
                <li key={x.id}>
                  <div>
                    <strong>{x.user_agent ?? 'unknown browser'}</strong>{' '}
                    {x.current && <span className="badge status-running">this browser</span>}
                    <div className="muted small">
                      {x.method} sign-in from {x.ip ?? 'unknown'} · {formatTime(x.created_at)} · last used{' '}
                      {relativeTime(x.last_seen_at)} · expires {relativeTime(x.expires_at)}
                    </div>
                  </div>
                  <button
                    type="button"
                    className="danger small"
                    disabled={action.busy}
                    onClick={() =>
                      void action.run(async () => {
                        await account.revokeSession(x.id);
                        if (x.current) navigate('/signin', { replace: true });
                        else sessions.reload();
                      })
                    }
                  >
                    {x.current ? 'Sign out here' : 'Revoke'}
                  </button>
                </li>
              ))}
            </ul>
          )
        }
      </Show>
      <ErrorBox error={action.error} />
    </div>
  );
}

function Password() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [done, setDone] = useState(false);
  const action = useAction();
  return (
    <div className="card">
      <h2>Password</h2>
      <form
        className="row"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          setDone(false);
          void action.run(async () => {
            await account.changePassword(current, next);
            setCurrent('');
            setNext('');
            setDone(true);
          });
        }}
      >
        <label>
          Current password
          <input
            type="password"
            autoComplete="current-password"
            value={current}
            onChange={(e) => setCurrent(e.target.value)}
            required
          />
        </label>
        <label>
          New password (10 characters or more)
          <input
            type="password"
            autoComplete="new-password"
            minLength={10}
            value={next}
            onChange={(e) => setNext(e.target.value)}
            required
          />
        </label>
        <button type="submit" disabled={action.busy}>
          Change password
        </button>
      </form>
      {done && <p role="status">Password changed; your other sessions were signed out.</p>}
      <ErrorBox error={action.error} />
    </div>
  );
}
