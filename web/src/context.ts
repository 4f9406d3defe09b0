import { createContext, useContext } from 'react';
import type { SessionInfo } from '../../libs/client/src/account.js';

export interface AppContext {
  session: SessionInfo;
  /** The workspace the pages show. */
  ws: { id: string; name: string; role: 'owner' | 'member' | 'viewer' };
  /** Whether the signed-in user may change things here (viewers may not; the server refuses anyway). */
  canWrite: boolean;
  isOwner: boolean;
  refreshSession: () => void;
}

export const Ctx = createContext<AppContext | undefined>(undefined);

export function useApp(): AppContext {
  const c = useContext(Ctx);
  if (!c) throw new Error('useApp outside the signed-in app');
  return c;
}

/** A path inside the current workspace's pages. */
export const wsPath = (ws: string, rest = '') => `/w/${encodeURIComponent(ws)}${rest}`;
