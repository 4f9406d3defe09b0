import { dashboard, runway } from '../api.js';
import { useApp } from '../context.js';
import { Empty, PageHeader, Show, formatTime, useAsync } from '../ui.js';

export function ConfigurationPage() {
  const { ws } = useApp();
  const profiles = useAsync(() => dashboard.configurationProfiles(ws.id), [ws.id]);
  const versions = useAsync(() => runway.listConfigurations(ws.id, 20), [ws.id]);
  return (
    <section>
      <PageHeader title="Configuration" />
      <p className="muted">
        The profiles of your <code>.dlt/*.toml</code> files and the keys each defines. Values never leave the
        server: secrets are encrypted at rest and handed only to runs.
      </p>
      <Show a={profiles} what="configuration profiles">
        {(p) =>
          !p.configuration ? (
            <Empty>
              <p>No configuration uploaded yet.</p>
              <p className="muted small">
                <code>dlt runtime deploy</code> uploads your <code>.dlt</code> folder with the code.
              </p>
            </Empty>
          ) : (
            <>
              <p>
                Version {p.configuration.version}, uploaded {formatTime(p.configuration.created_at)}.
              </p>
              {p.warnings.length > 0 && (
                <ul className="warnings" aria-label="Warnings">
                  {p.warnings.map((w) => (
                    <li key={w} className="notice">
                      ⚠ {w}
                    </li>
                  ))}
                </ul>
              )}
              <ul className="cards">
                {p.profiles.map((pr) => (
                  <li key={pr.name} className="card">
                    <h2>{pr.name}</h2>
                    <p className="muted small">{pr.files.join(', ')}</p>
                    <h3>Settings ({pr.config_keys.length})</h3>
                    {pr.config_keys.length ? (
                      <ul className="keys">
                        {pr.config_keys.map((k) => (
                          <li key={k}>
                            <code>{k}</code>
                          </li>
                        ))}
                      </ul>
                    ) : (
                      <p className="muted">none</p>
                    )}
                    <h3>Secrets ({pr.secret_keys.length})</h3>
                    {pr.secret_keys.length ? (
                      <ul className="keys">
                        {pr.secret_keys.map((k) => (
                          <li key={k}>
                            <code>{k}</code> <span className="muted">••••••</span>
                          </li>
                        ))}
                      </ul>
                    ) : (
                      <p className="muted">none</p>
                    )}
                  </li>
                ))}
              </ul>
            </>
          )
        }
      </Show>
      <h2>Versions</h2>
      <Show a={versions} what="configuration versions">
        {(v) =>
          v.items.length === 0 ? (
            <Empty>No versions yet.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Version</th>
                    <th scope="col">Files</th>
                    <th scope="col">Uploaded</th>
                  </tr>
                </thead>
                <tbody>
                  {v.items.map((c) => (
                    <tr key={c.id}>
                      <td>{c.version}</td>
                      <td>{c.file_count}</td>
                      <td>{formatTime(c.date_added)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Show>
    </section>
  );
}
