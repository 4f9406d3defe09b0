import type { MigrationSet } from '#libs/database';

export const projectionMigrations: MigrationSet = {
  owner: 'projections',
  migrations: [
    {
      name: '0001_checkpoints',
      up: `
        CREATE TABLE IF NOT EXISTS projection_checkpoints (
          name text PRIMARY KEY,
          stream_seq bigint NOT NULL DEFAULT 0,
          updated_at timestamptz NOT NULL DEFAULT now()
        );`,
    },
  ],
};

export interface CheckpointTable {
  projection_checkpoints: { name: string; stream_seq: number; updated_at: Date };
}
