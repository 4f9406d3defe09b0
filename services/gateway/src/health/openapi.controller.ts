import { Controller, Get, Inject } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { buildOpenApi } from '#libs/http';
import { Public, PUBLIC_ROUTE } from '../auth/auth.guard.js';

/** GET /api/openapi.json, generated from the mapped controllers at start. */
@Controller()
export class OpenApiController {
  private doc: unknown;
  constructor(@Inject(DiscoveryService) private readonly discovery: DiscoveryService) {}

  @Public()
  @Get('api/openapi.json')
  openapi() {
    this.doc ??= buildOpenApi(
      this.discovery
        .getControllers()
        .map((w) => w.metatype)
        .filter((m): m is NonNullable<typeof m> => typeof m === 'function') as never,
      { title: 'Runway API', version: '1', publicKey: PUBLIC_ROUTE },
    );
    return this.doc;
  }
}
