import type { Provider } from '@nestjs/common';
import { RunLogReader } from '#libs/run-logs';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';

export const RUN_LOG_READER = Symbol('RUN_LOG_READER');

/** One reader of the LOGS stream per gateway (its text cache serves every poller). */
export const runLogReaderProvider: Provider = {
  provide: RUN_LOG_READER,
  inject: [SERVICE_CONTEXT],
  useFactory: (ctx: ServiceContext) =>
    new RunLogReader(
      ctx.nats,
      { eventsStream: ctx.config.events.stream, subjectPrefix: ctx.config.events.subjectPrefix },
      { textMaxBytes: ctx.config.logs.textMaxBytes },
    ),
};
