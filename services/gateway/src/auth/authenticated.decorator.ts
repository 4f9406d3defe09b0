import { SetMetadata } from '@nestjs/common';

/** What a caller must be to use a route or gRPC method, declared once beside it. */
export interface AuthRule {
  /** A role in the workspace the route names (`:ws`, gRPC `workspace_id`): viewers read, members write, owners administer. */
  workspace?: 'read' | 'write' | 'owner';
  /** With `workspace: 'owner'`: a caller naming themselves (`:user`, gRPC `user`) needs only `read` (a member may leave). */
  selfNeeds?: 'read';
  /** An instance administrator. */
  admin?: true;
}

export const AUTH_RULE = 'runway:auth-rule';

/**
 * Authentication plus the authorization of a route (as immich's `@Authenticated({ permission })`),
 * read by the AuthGuard before the handler runs. A route without it only needs a valid credential.
 */
export const Authenticated = (rule: AuthRule = {}) => SetMetadata(AUTH_RULE, rule);
