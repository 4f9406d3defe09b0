import {
  adminPermissions,
  DEFAULT_NATS_SCOPE,
  NATS_USERS,
  renderPermissions,
  runwayPermissions,
  workerPermissions,
  type NatsUser,
  type Permissions,
} from '#libs/nats';

/** The environment variable holding a NATS user's password in deploy/'s nats-server configuration. */
export function natsPasswordVariable(user: NatsUser): string {
  return `NATS_${user.toUpperCase()}_PASSWORD`;
}

/**
 * The `users` entries of deploy/'s nats.conf: the users and permissions libs/nats gives the
 * nats-server `npm start` runs (default scope), with each password read from the environment.
 */
export function natsUsersBlock(indent = '    '): string {
  const perms: Record<NatsUser, Permissions> = {
    runway: runwayPermissions(),
    worker: workerPermissions(DEFAULT_NATS_SCOPE),
    admin: adminPermissions(DEFAULT_NATS_SCOPE),
  };
  return NATS_USERS.map(
    (u) =>
      `${indent}{ user: ${JSON.stringify(u)}, password: $${natsPasswordVariable(u)}, permissions: ${renderPermissions(perms[u], indent + '  ')} }`,
  ).join(',\n');
}

/** The lines between `# BEGIN users` and `# END users` of a nats.conf (undefined without the markers). */
export function usersSection(conf: string): string | undefined {
  const m = /^[ \t]*# BEGIN users[^\n]*\n([\s\S]*?)^[ \t]*# END users/m.exec(conf);
  return m?.[1]?.replace(/\n$/, '');
}
