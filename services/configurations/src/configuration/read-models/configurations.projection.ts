import { ConfigurationCreated } from '#libs/contracts';
import { defineProjection, eventsOf } from '#libs/projections';
import type { ConfigurationFileRow, ConfigurationTables } from '../../migrations/index.js';

const handled = eventsOf(ConfigurationCreated);
const uniqSorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

/**
 * Folds ConfigurationCreated into `configurations` (one row per version) and
 * `configuration_profiles` (per profile: its files and the key names they define, config and
 * secret keys apart). Nothing here is a value: the event carries none.
 */
export const configurationsProjection = defineProjection<ConfigurationTables>({
  name: 'configurations',
  tables: ['configurations', 'configuration_profiles'],
  canHandle: handled.types,
  async apply(db, events) {
    for (const e of handled.select(events)) {
      const d = e.data;
      const ws = e.aggregate.workspaceId;
      const at = new Date(e.time);
      const files: ConfigurationFileRow[] = d.files.map((f) => ({
        path: f.path,
        size: f.size,
        kind: f.kind,
        profile: f.profile,
        encrypted: f.encrypted,
        keys: f.keys,
      }));
      await db
        .insertInto('configurations')
        .values({
          id: d.configurationId,
          workspace_id: ws,
          version: d.version,
          content_hash: d.contentHash,
          file_count: d.fileCount,
          file_names: d.files.map((f) => f.path).join(', '),
          size: d.size,
          profiles: d.profiles,
          warnings: JSON.stringify(d.warnings),
          files: JSON.stringify(files),
          created_by: d.createdBy,
          created_at: at,
          updated_at: at,
        })
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
      const rows = d.profiles.map((profile) => {
        const own = d.files.filter((f) => f.profile === profile);
        return {
          configuration_id: d.configurationId,
          workspace_id: ws,
          profile,
          files: own.map((f) => f.path),
          config_keys: uniqSorted(own.filter((f) => f.kind === 'config').flatMap((f) => f.keys)),
          secret_keys: uniqSorted(own.filter((f) => f.kind === 'secrets').flatMap((f) => f.keys)),
        };
      });
      if (rows.length > 0) {
        await db
          .insertInto('configuration_profiles')
          .values(rows)
          .onConflict((oc) => oc.columns(['configuration_id', 'profile']).doNothing())
          .execute();
      }
    }
  },
});
