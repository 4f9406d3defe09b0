import { Kysely, Migrator, sql, type Migration, type MigrationProvider } from 'kysely';

/** A migration written as raw SQL. `name` sorts: `0001_workspaces`. */
export interface SqlMigration {
  name: string;
  up: string;
  down?: string;
}

/** The migrations one owner (a service or a lib) keeps in its own `migrations/` folder. */
export interface MigrationSet {
  owner: string;
  migrations: readonly SqlMigration[];
}

class SqlProvider implements MigrationProvider {
  constructor(private readonly set: MigrationSet) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    const out: Record<string, Migration> = {};
    for (const m of this.set.migrations) {
      out[m.name] = {
        up: async (db) => {
          await sql.raw(m.up).execute(db);
        },
        ...(m.down ? { down: async (db) => void (await sql.raw(m.down ?? '').execute(db)) } : {}),
      };
    }
    return out;
  }
}

/** Runs every pending migration of every set; each owner has its own history table. */
export async function migrateToLatest(db: Kysely<unknown>, sets: readonly MigrationSet[]): Promise<string[]> {
  const applied: string[] = [];
  for (const set of sets) {
    const migrator = new Migrator({
      db,
      provider: new SqlProvider(set),
      migrationTableName: `migrations_${set.owner}`,
      migrationLockTableName: `migrations_${set.owner}_lock`,
    });
    const { error, results } = await migrator.migrateToLatest();
    for (const r of results ?? []) {
      if (r.status === 'Error')
        throw new Error(`migration ${set.owner}/${r.migrationName} failed: ${String(error)}`);
      if (r.status === 'Success') applied.push(`${set.owner}/${r.migrationName}`);
    }
    if (error)
      throw new Error(
        `migrations of ${set.owner} failed: ${error instanceof Error ? error.message : String(error)}`,
      );
  }
  return applied;
}
