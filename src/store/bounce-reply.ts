import type { AsyncReport } from './types.ts';

/**
 * What of a late bounce becomes the recipient's last reply: the enhanced status code (RFC 3464
 * Status) and the remote diagnostic, when the parser found them as text; null keeps what the
 * recipient had. The reply code is the one the report quotes (`data.code`), else 550 (a
 * permanent bounce): the 250 of the delivery it replaces would contradict the bounce.
 */
export function bounceReply(report: AsyncReport): {
  code: number;
  status: string | null;
  diagnostic: string | null;
} {
  const { code, status, diagnostic } = report.data;
  // A diagnostic quotes the remote reply whole ("550 5.1.1 <x>: …"); the reply's code and
  // enhanced code have fields of their own, so the text keeps only what follows them.
  const text =
    typeof diagnostic === 'string'
      ? diagnostic.replace(/^\s*\d{3}(?:[ -]+\d\.\d{1,3}\.\d{1,3})?[ -]+/, '').trim()
      : '';
  return {
    code: typeof code === 'number' && Number.isInteger(code) && code >= 400 && code < 600 ? code : 550,
    status: typeof status === 'string' && status !== '' ? status : null,
    diagnostic: text !== '' ? text : null,
  };
}
