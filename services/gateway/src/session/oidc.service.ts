import { Inject, Injectable } from '@nestjs/common';
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import * as oidc from 'openid-client';
import { z } from 'zod';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { IdentityRepository } from '../auth/identity.repository.js';
import { SigningKey } from '../auth/signing-key.js';
import { UserHandler } from '../user/user.handler.js';
import { SessionsService, type ClientInfo, type StartedSession } from './sessions.service.js';

/** How long a sign-in may take at the provider (the flow cookie's life). */
const FLOW_MS = 10 * 60_000;
const flowSchema = z.object({
  state: z.string(),
  nonce: z.string(),
  verifier: z.string(),
  returnTo: z.string(),
  at: z.number(),
});
type Flow = z.infer<typeof flowSchema>;
const claimsSchema = z.object({
  email: z.string().email().max(320),
  email_verified: z.boolean().optional(),
  name: z.string().max(200).optional(),
});

/** A failed OIDC sign-in: shown to the person as a page with `status`. */
export class OidcError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 502,
    message: string,
  ) {
    super(message);
  }
}

/** Only same-origin paths: `/jobs?x=1`, never `//host`, `/\host` or `https://…`. */
export function safeReturnTo(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length > 2000) return '/';
  if (!raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) return '/';
  if (/[\r\n\t]/.test(raw)) return '/';
  return raw;
}

/**
 * OpenID Connect sign-in (authorization code + PKCE + state + nonce, openid-client): the ID
 * token's signature is checked against the issuer's JWKS, with iss, aud, exp and nonce. The user
 * is found by email (or created with RUNWAY_OIDC_AUTO_CREATE=on); a dashboard session follows.
 */
@Injectable()
export class OidcService {
  private discovered: Promise<oidc.Configuration> | undefined;
  private readonly settings: ServiceContext['config']['oidc'];
  private readonly publicUrl: string;

  constructor(
    @Inject(SessionsService) private readonly sessions: SessionsService,
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(UserHandler) private readonly users: UserHandler,
    @Inject(SigningKey) private readonly signing: SigningKey,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
  ) {
    this.settings = ctx.config.oidc;
    this.publicUrl = ctx.config.publicUrl;
  }

  get redirectUri(): string {
    return `${this.publicUrl}/auth/oidc/callback`;
  }

  private configured() {
    if (!this.settings) throw new OidcError(404, 'OpenID Connect sign-in is not configured on this Runway');
    return this.settings;
  }

  /** The provider's metadata (discovered once; retried after a failure). */
  private configuration(): Promise<oidc.Configuration> {
    const s = this.configured();
    this.discovered ??= oidc
      .discovery(
        new URL(s.issuer),
        s.clientId,
        { client_secret: s.clientSecret },
        oidc.ClientSecretBasic(s.clientSecret),
        // A provider on plain http (a local test provider) is allowed explicitly; https otherwise.
        s.issuer.startsWith('http:') ? { execute: [oidc.allowInsecureRequests] } : {},
      )
      .then((config) => {
        oidc.enableNonRepudiationChecks(config); // verify the ID token's signature with the JWKS
        return config;
      })
      .catch((err: unknown) => {
        this.discovered = undefined;
        throw new OidcError(502, `the OpenID provider could not be reached: ${String(err)}`);
      });
    return this.discovered;
  }

  /** The provider's authorization URL to redirect to, and the flow cookie to set. */
  async start(returnTo: unknown): Promise<{ url: string; cookie: string }> {
    const config = await this.configuration();
    const flow: Flow = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
      returnTo: safeReturnTo(returnTo),
      at: Date.now(),
    };
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.redirectUri,
      scope: 'openid email profile',
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(flow.verifier),
      code_challenge_method: 'S256',
      state: flow.state,
      nonce: flow.nonce,
    });
    return { url: url.href, cookie: this.seal(flow) };
  }

  /** The provider redirected back: checks everything, then starts a session for the Runway user. */
  async finish(
    query: string,
    cookie: string | undefined,
    client: ClientInfo,
  ): Promise<{ started: StartedSession; returnTo: string }> {
    const config = await this.configuration();
    const flow = cookie ? this.open(cookie) : null;
    if (!flow)
      throw new OidcError(400, 'this sign-in has expired or was started in another browser: start it again');
    const current = new URL(`${this.redirectUri}${query}`);
    const error = current.searchParams.get('error');
    if (error)
      throw new OidcError(
        403,
        `the OpenID provider refused the sign-in: ${current.searchParams.get('error_description') ?? error}`,
      );
    let claims: Record<string, unknown>;
    try {
      const tokens = await oidc.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
      const idToken = tokens.claims();
      if (!idToken) throw new Error('no ID token');
      claims = { ...idToken };
      // Providers that keep profile claims out of the ID token give them at the userinfo endpoint
      // (for the same subject, which openid-client checks).
      if (typeof claims.email !== 'string')
        claims = { ...claims, ...(await oidc.fetchUserInfo(config, tokens.access_token, idToken.sub)) };
    } catch (err) {
      throw new OidcError(
        400,
        `the sign-in could not be verified: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const parsed = claimsSchema.safeParse(claims);
    if (!parsed.success) throw new OidcError(403, 'the OpenID provider did not tell your email address');
    if (parsed.data.email_verified === false)
      throw new OidcError(403, `the OpenID provider has not verified ${parsed.data.email}`);
    const userId = await this.userFor(parsed.data.email, parsed.data.name);
    const started = await this.sessions.start(userId, 'oidc', client);
    return { started, returnTo: flow.returnTo };
  }

  private async userFor(email: string, name: string | undefined): Promise<string> {
    const user = await this.identities.userByEmail(email);
    if (user) {
      if (user.disabled_at) throw new OidcError(403, `the Runway user ${user.email} is disabled`);
      return user.id;
    }
    if (!this.configured().autoCreate)
      throw new OidcError(
        403,
        `there is no Runway account for ${email}: ask an administrator to add you (runway admin users create ${email})`,
      );
    const r = await this.users.register(email, name ?? email, 'oidc', { userId: randomUUID() });
    await this.ctx.waitForProjections(r.seq);
    return r.userId;
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.signing.key).update(`oidc-flow:${payload}`).digest('base64url');
  }

  private seal(flow: Flow): string {
    const payload = Buffer.from(JSON.stringify(flow)).toString('base64url');
    return `${payload}.${this.mac(payload)}`;
  }

  private open(cookie: string): Flow | null {
    const [payload, mac] = cookie.split('.');
    if (!payload || !mac) return null;
    const want = Buffer.from(this.mac(payload));
    const got = Buffer.from(mac);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(payload, 'base64url').toString());
    } catch {
      return null;
    }
    const flow = flowSchema.safeParse(json);
    if (!flow.success || Date.now() - flow.data.at > FLOW_MS) return null;
    return flow.data;
  }
}
