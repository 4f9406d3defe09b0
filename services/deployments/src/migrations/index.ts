import type { DeploymentFileType } from '#libs/contracts';
import type { MigrationSet } from '#libs/database';

export const deploymentsMigrations: MigrationSet = {
  owner: 'deployments',
  migrations: [
    {
      name: '0001_deployments',
      up: `
        CREATE TABLE deployments (
          id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          version integer NOT NULL,
          content_hash text NOT NULL,
          files_digest text NOT NULL,
          file_count integer NOT NULL,
          size bigint NOT NULL,
          archive_size bigint NOT NULL,
          file_names text NOT NULL DEFAULT '',
          source text NOT NULL,
          created_by text NOT NULL,
          created_at timestamptz NOT NULL,
          UNIQUE (workspace_id, version)
        );
        CREATE TABLE deployment_files (
          deployment_id uuid NOT NULL,
          workspace_id uuid NOT NULL,
          path text NOT NULL,
          type text NOT NULL CHECK (type IN ('file', 'symlink')),
          size bigint NOT NULL,
          sha256 text NOT NULL,
          mode integer NOT NULL,
          link_target text,
          PRIMARY KEY (deployment_id, path)
        );
        CREATE INDEX deployment_files_blob ON deployment_files (workspace_id, sha256);`,
    },
    {
      // The requirements.json a client uploaded beside the files (dlt-runtime 0.26.1).
      name: '0002_deployment_requirements',
      up: `
        ALTER TABLE deployments
          ADD COLUMN requirements_sha256 text,
          ADD COLUMN requirements_size bigint NOT NULL DEFAULT 0;`,
    },
  ],
};

export interface DeploymentsTables {
  deployments: {
    id: string;
    workspace_id: string;
    version: number;
    content_hash: string;
    files_digest: string;
    file_count: number;
    size: number;
    archive_size: number;
    file_names: string;
    source: string;
    created_by: string;
    created_at: Date;
    /** Blob of the uploaded requirements.json (null: none). */
    requirements_sha256: string | null;
    requirements_size: number;
  };
  deployment_files: {
    deployment_id: string;
    workspace_id: string;
    path: string;
    type: DeploymentFileType;
    size: number;
    sha256: string;
    mode: number;
    link_target: string | null;
  };
  projection_checkpoints: { name: string; stream_seq: number; updated_at: Date };
}
