/** gRPC methods of the session slice: device logins, sessions, passwords. */

import { parseInput } from '#libs/http';
import { changePasswordBody, setPasswordBody } from '../../session/session.controller.js';
import { admin, anyone, required, str, who, type Method } from './common.js';

export const sessionsMethods: Record<string, Method> = {
  GetDeviceLogin: { auth: anyone, handle: (s, r, c) => s.logins.show(who(c), required(r, 'user_code')) },
  ApproveDeviceLogin: {
    auth: anyone,
    handle: (s, r, c) => s.logins.approve(who(c), required(r, 'user_code')),
  },
  DenyDeviceLogin: { auth: anyone, handle: (s, r, c) => s.logins.deny(who(c), required(r, 'user_code')) },
  ListMySessions: { auth: anyone, handle: (s, _r, c) => s.sessions.list(who(c)) },
  RevokeMySession: { auth: anyone, handle: (s, r, c) => s.sessions.revoke(who(c), required(r, 'id')) },
  ChangeMyPassword: {
    auth: anyone,
    handle: (s, r, c) => {
      const input = parseInput(
        changePasswordBody,
        { current: str(r, 'current'), new: str(r, 'new') },
        'request',
      );
      return s.sessions.changePassword(who(c), input.current, input.new, { userAgent: 'grpc', ip: 'grpc' });
    },
  },
  SetUserPassword: {
    auth: admin,
    handle: (s, r, c) =>
      s.sessions.setPassword(
        who(c),
        required(r, 'user'),
        parseInput(setPasswordBody, { password: str(r, 'password') }, 'request').password,
      ),
  },
};
