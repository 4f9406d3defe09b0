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
    {
      // A commit a projection could not decode or apply (docs/dead-letters.md). `halted`: the
      // projection is configured to stop there (its checkpoint stays below the commit) instead of
      // passing over it.
      name: '0002_dead_letters',
      up: `
        CREATE TABLE IF NOT EXISTS projection_dead_letters (
          projection text NOT NULL,
          stream_seq bigint NOT NULL,
          subject text NOT NULL,
          event_types text,
          error text NOT NULL,
          halted boolean NOT NULL DEFAULT false,
          failed_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (projection, stream_seq)
        );
        CREATE INDEX IF NOT EXISTS projection_dead_letters_recent
          ON projection_dead_letters (projection, failed_at DESC);`,
    },
  ],
};

export interface DeadLetterRow {
  projection: string;
  stream_seq: number;
  subject: string;
  event_types: string | null;
  error: string;
  halted: boolean;
  failed_at: Date;
}

export interface CheckpointTable {
  projection_checkpoints: { name: string; stream_seq: number; updated_at: Date };
  projection_dead_letters: DeadLetterRow;
}
