import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * One structured line per event on stdout. Never pass secrets or message bodies: the
 * redaction list is a safety net, not the rule.
 */
export function createLogger(options: {
  level: string;
  nodeId?: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  return pino(
    {
      level: options.level,
      base: options.nodeId ? { node: options.nodeId } : {},
      redact: {
        paths: ['password', '*.password', 'secret', '*.secret', 'authorization'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? process.stdout,
  );
}

/** A logger that drops everything (tests, CLI commands). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
