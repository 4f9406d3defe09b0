/** gRPC methods of the deployment slice. */

import { toDeploymentResponse } from '../../deployment/deployment.controller.js';
import { bytes, page, read, str, who, workspaceOf, write, type Method } from './common.js';

export const deploymentsMethods: Record<string, Method> = {
  ListDeployments: {
    auth: read,
    handle: async (s, r) => {
      const q = page(r);
      const { rows, total } = await s.deployments.list(workspaceOf(r), q.limit, q.offset);
      return { items: rows.map(toDeploymentResponse), ...q, total };
    },
  },
  GetDeployment: {
    auth: read,
    handle: async (s, r) =>
      toDeploymentResponse(await s.deployments.resolve(workspaceOf(r), str(r, 'id_or_version') || 'latest')),
  },
  CreateDeployment: {
    auth: write,
    handle: async (s, r, c) => {
      const release = s.uploads.acquire(workspaceOf(r));
      try {
        const { row } = await s.deployments.fromArchive(who(c), workspaceOf(r), bytes(r), undefined);
        return toDeploymentResponse(row);
      } finally {
        release();
      }
    },
  },
};
