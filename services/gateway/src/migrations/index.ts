import type { MigrationSet } from '#libs/database';

export const gatewayMigrations: MigrationSet = {
  owner: 'gateway',
  migrations: [
    {
      name: '0001_workspaces_members',
      up: `
        CREATE TABLE workspaces (
          id uuid PRIMARY KEY,
          name text NOT NULL,
          owner_id uuid NOT NULL,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL
        );
        CREATE TABLE members (
          workspace_id uuid NOT NULL,
          user_id uuid NOT NULL,
          role text NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
          added_at timestamptz NOT NULL,
          PRIMARY KEY (workspace_id, user_id)
        );
        CREATE INDEX members_user ON members (user_id);`,
    },
    {
      name: '0002_users_tokens',
      up: `
        CREATE TABLE users (
          id uuid PRIMARY KEY,
          email text NOT NULL,
          name text NOT NULL,
          created_at timestamptz NOT NULL
        );
        CREATE UNIQUE INDEX users_email ON users (lower(email));
        CREATE TABLE api_tokens (
          id text PRIMARY KEY,
          user_id uuid NOT NULL,
          name text NOT NULL,
          hash text NOT NULL,
          created_at timestamptz NOT NULL,
          expires_at timestamptz,
          revoked_at timestamptz
        );
        CREATE INDEX api_tokens_user ON api_tokens (user_id);`,
    },
    {
      name: '0003_user_admin',
      up: `ALTER TABLE users ADD COLUMN is_admin boolean NOT NULL DEFAULT false;`,
    },
    {
      // The write model owns email uniqueness (an email claim per address, decided on the event
      // store): a unique index here only made the users projection stop on a duplicate.
      name: '0004_users_disabled_token_parent',
      up: `
        DROP INDEX users_email;
        CREATE INDEX users_email ON users (lower(email));
        ALTER TABLE users ADD COLUMN disabled_at timestamptz;
        ALTER TABLE api_tokens ADD COLUMN parent_id text;`,
    },
    {
      // Secrets of the dashboard sign-in, never in events (docs/dashboard-auth.md): a password hash
      // per local account, and sessions by the SHA-256 of their cookie and CSRF values.
      name: '0005_credentials_sessions',
      up: `
        CREATE TABLE user_credentials (
          user_id uuid PRIMARY KEY,
          password_hash text NOT NULL,
          updated_at timestamptz NOT NULL
        );
        CREATE TABLE sessions (
          id text PRIMARY KEY,
          token_hash text NOT NULL UNIQUE,
          csrf_hash text NOT NULL,
          user_id uuid NOT NULL,
          method text NOT NULL CHECK (method IN ('password', 'oidc')),
          user_agent text NOT NULL,
          ip text NOT NULL,
          created_at timestamptz NOT NULL,
          last_seen_at timestamptz NOT NULL,
          expires_at timestamptz NOT NULL,
          revoked_at timestamptz
        );
        CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);`,
    },
  ],
};

export interface GatewayTables {
  workspaces: { id: string; name: string; owner_id: string; created_at: Date; updated_at: Date };
  members: { workspace_id: string; user_id: string; role: string; added_at: Date };
  users: {
    id: string;
    email: string;
    name: string;
    is_admin: boolean;
    created_at: Date;
    disabled_at: Date | null;
  };
  api_tokens: {
    id: string;
    user_id: string;
    name: string;
    hash: string;
    created_at: Date;
    expires_at: Date | null;
    revoked_at: Date | null;
    parent_id: string | null;
  };
  user_credentials: { user_id: string; password_hash: string; updated_at: Date };
  sessions: {
    id: string;
    token_hash: string;
    csrf_hash: string;
    user_id: string;
    method: 'password' | 'oidc';
    user_agent: string;
    ip: string;
    created_at: Date;
    last_seen_at: Date;
    expires_at: Date;
    revoked_at: Date | null;
  };
}
