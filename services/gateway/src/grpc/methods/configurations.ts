/** gRPC methods of the configuration slice. */

import { toConfigurationResponse } from '../../configuration/configuration.controller.js';
import { bytes, page, read, str, who, workspaceOf, write, type Method } from './common.js';

export const configurationsMethods: Record<string, Method> = {
  ListConfigurations: {
    auth: read,
    handle: async (s, r) => {
      const q = page(r);
      const { rows, total } = await s.configurations.list(workspaceOf(r), q.limit, q.offset);
      return { items: rows.map(toConfigurationResponse), ...q, total };
    },
  },
  GetConfiguration: {
    auth: read,
    handle: async (s, r) =>
      toConfigurationResponse(
        await s.configurations.resolve(workspaceOf(r), str(r, 'id_or_version') || 'latest'),
      ),
  },
  CreateConfiguration: {
    auth: write,
    handle: async (s, r, c) => {
      const release = s.uploads.acquire(workspaceOf(r));
      try {
        return toConfigurationResponse(
          await s.configurations.upload(who(c), workspaceOf(r), bytes(r), false, undefined),
        );
      } finally {
        release();
      }
    },
  },
};
