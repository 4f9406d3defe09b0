import type { ColumnType } from 'kysely';
import type { ConfigurationFileKind } from '#libs/contracts';
import type { MigrationSet } from '#libs/database';

/**
 * Tables of the configurations service, all read models (projection `configurations`), key names
 * only, never values: `configurations`, `configuration_profiles`. File contents live in the
 * JetStream object store (configuration/content-store.ts); `configuration_blobs`, their first
 * home, is emptied into it by `moveConfigurationBlobs` before migrations run, then dropped by 0002.
 */
export const configurationsMigrations: MigrationSet = {
  owner: 'configurations',
  migrations: [
    {
      name: '0001_configurations',
      up: `
        CREATE TABLE configuration_blobs (
          id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          configuration_id uuid NOT NULL,
          version integer NOT NULL,
          path text NOT NULL,
          encrypted boolean NOT NULL,
          key_id text,
          content bytea NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          CHECK (encrypted = (key_id IS NOT NULL))
        );
        CREATE INDEX configuration_blobs_configuration ON configuration_blobs (configuration_id);
        CREATE TABLE configurations (
          id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          version integer NOT NULL,
          content_hash text NOT NULL,
          file_count integer NOT NULL,
          file_names text NOT NULL,
          size bigint NOT NULL,
          profiles text[] NOT NULL,
          warnings jsonb NOT NULL,
          files jsonb NOT NULL,
          created_by uuid NOT NULL,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          UNIQUE (workspace_id, version)
        );
        CREATE TABLE configuration_profiles (
          configuration_id uuid NOT NULL,
          workspace_id uuid NOT NULL,
          profile text NOT NULL,
          files text[] NOT NULL,
          config_keys text[] NOT NULL,
          secret_keys text[] NOT NULL,
          PRIMARY KEY (configuration_id, profile)
        );`,
    },
    {
      name: '0002_drop_configuration_blobs',
      up: `DROP TABLE IF EXISTS configuration_blobs;`,
    },
  ],
};

export interface ConfigurationFileRow {
  path: string;
  size: number;
  kind: ConfigurationFileKind;
  profile: string | null;
  encrypted: boolean;
  keys: string[];
}

export interface ConfigurationTables {
  configurations: {
    id: string;
    workspace_id: string;
    version: number;
    content_hash: string;
    file_count: number;
    file_names: string;
    size: number;
    profiles: string[];
    /** jsonb, written as JSON text. */
    warnings: ColumnType<string[], string, string>;
    files: ColumnType<ConfigurationFileRow[], string, string>;
    created_by: string;
    created_at: Date;
    updated_at: Date;
  };
  configuration_profiles: {
    configuration_id: string;
    workspace_id: string;
    profile: string;
    files: string[];
    config_keys: string[];
    secret_keys: string[];
  };
}

/** The table of 0001 that 0002 drops, read once by moveConfigurationBlobs. */
export type LegacyConfigurationTables = {
  configuration_blobs: {
    id: string;
    workspace_id: string;
    configuration_id: string;
    version: number;
    path: string;
    encrypted: boolean;
    key_id: string | null;
    content: Buffer;
    created_at: Date | undefined;
  };
};
