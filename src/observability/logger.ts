import { createHmac } from 'node:crypto';
import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * Fields that carry recipient addresses, at the top of a log line or one level down. With
 * `log.hash_recipients` their values are logged as a keyed hash: the same address gives the same
 * hash (lines of one recipient can still be followed), but the address is not in the logs.
 */
export const RECIPIENT_FIELDS = ['recipient', 'recipients', 'rcpt', 'to', 'address'];

/** `h:` + 16 hex digits of HMAC-SHA256(key, lower-cased address); arrays element by element. */
export function hashRecipientValue(key: Buffer, value: unknown): unknown {
  if (typeof value === 'string') {
    return `h:${createHmac('sha256', key).update(value.trim().toLowerCase()).digest('hex').slice(0, 16)}`;
  }
  if (Array.isArray(value)) return value.map((v) => hashRecipientValue(key, v));
  return value;
}

/**
 * One structured line per event on stdout. Never pass secrets or message bodies: the
 * redaction list is a safety net, not the rule.
 */
export function createLogger(options: {
  level: string;
  nodeId?: string;
  destination?: NodeJS.WritableStream;
  /** Hash recipient addresses (RECIPIENT_FIELDS) with this key (config log.hash_recipients). */
  hashRecipients?: Buffer;
}): Logger {
  const key = options.hashRecipients;
  return pino(
    {
      level: options.level,
      base: options.nodeId ? { node: options.nodeId } : {},
      redact: {
        paths: ['password', '*.password', 'secret', '*.secret', 'authorization'],
        censor: '[redacted]',
      },
      ...(key
        ? {
            // Serializers run on top-level keys only; one level down is covered by formatters.log.
            formatters: {
              log: (object: Record<string, unknown>) => {
                const out: Record<string, unknown> = {};
                for (const [k, v] of Object.entries(object)) {
                  if (RECIPIENT_FIELDS.includes(k)) out[k] = hashRecipientValue(key, v);
                  else if (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Error)) {
                    const inner: Record<string, unknown> = {};
                    for (const [ik, iv] of Object.entries(v)) {
                      inner[ik] = RECIPIENT_FIELDS.includes(ik) ? hashRecipientValue(key, iv) : iv;
                    }
                    out[k] = inner;
                  } else out[k] = v;
                }
                return out;
              },
            },
          }
        : {}),
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? process.stdout,
  );
}

/** A logger that drops everything (tests, CLI commands). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
