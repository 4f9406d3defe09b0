/** gRPC methods of the interactive slice: an interactive job's public link. */

import { parseInput } from '#libs/http';
import { publicLinkBody, toPublicLinkResponse } from '../../interactive/public-links.controller.js';
import { str, who, workspaceOf, write, type Method } from './common.js';

export const interactiveMethods: Record<string, Method> = {
  ChangePublicLink: {
    auth: write,
    handle: async (s, r, c) => {
      const b = parseInput(
        publicLinkBody,
        { job: str(r, 'id_or_name'), action: str(r, 'action') || 'enable' },
        'request',
      );
      const out = toPublicLinkResponse(
        await s.interactive.changePublicLink(who(c), workspaceOf(r), b.job, b.action),
      );
      return { ...out, public_url: out.public_url ?? '' };
    },
  },
};
