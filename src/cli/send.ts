import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { parseHostPort } from '../config/load.ts';
import { CliError, configFrom, type GlobalOptions } from './context.ts';

interface SendOptions {
  key?: string;
  url?: string;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  subject?: string;
  text?: string;
  html?: string;
  attach: string[];
  tag: string[];
  stream?: string;
  template?: string;
  var: string[];
  sendAt?: string;
  json?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The API's base URL from http.listen (a wildcard listener is reached on loopback). */
function baseUrl(listen: string): string {
  const hp = parseHostPort(listen);
  if (!hp) throw new CliError(`http.listen "${listen}" is not host:port; give --url`, 2);
  const host = hp.host === '0.0.0.0' || hp.host === '' ? '127.0.0.1' : hp.host === '::' ? '[::1]' : hp.host;
  return `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${hp.port}`;
}

/**
 * `postbote send`: one message through the running node's HTTP API (POST /v1/messages), for a
 * quick manual test of a key, a stream or a template.
 */
export function registerSend(program: Command, globals: () => GlobalOptions): void {
  program
    .command('send')
    .description('send one message through the HTTP API of a running Postbote')
    .option('--key <api key>', 'an API key with the send scope (default: $POSTBOTE_API_KEY)')
    .option('--url <url>', 'the API base URL (default: from http.listen)')
    .requiredOption('--from <address>', 'sender, "Name <addr>" or addr')
    .option('--to <address>', 'recipient (repeatable)', collect, [])
    .option('--cc <address>', 'copy recipient (repeatable)', collect, [])
    .option('--bcc <address>', 'blind copy recipient (repeatable)', collect, [])
    .option('--subject <text>', 'subject')
    .option('--text <text>', 'plain-text body')
    .option('--html <html>', 'HTML body')
    .option('--attach <file>', 'attach a file (repeatable)', collect, [])
    .option('--tag <tag>', 'tag (repeatable)', collect, [])
    .option('--stream <name>', "stream (default: the key's, else outbound)")
    .option('--template <id or alias>', 'a stored template')
    .option('--var <name=value>', 'template variable (repeatable)', collect, [])
    .option('--send-at <time>', 'RFC 3339 time of the first attempt')
    .option('--json', 'print the API answer as JSON')
    .action(async (opts: SendOptions) => {
      const key = opts.key ?? process.env.POSTBOTE_API_KEY;
      if (!key)
        throw new CliError('give --key or set POSTBOTE_API_KEY (postbote credentials create --api)', 2);
      if (opts.to.length + opts.cc.length + opts.bcc.length === 0)
        throw new CliError('give at least one --to', 2);
      const variables: Record<string, string> = {};
      for (const v of opts.var) {
        const eq = v.indexOf('=');
        if (eq <= 0) throw new CliError(`--var "${v}" is not name=value`, 2);
        variables[v.slice(0, eq)] = v.slice(eq + 1);
      }
      const attachments = opts.attach.map((file) => {
        try {
          return { filename: basename(file), content: readFileSync(file).toString('base64') };
        } catch (err) {
          throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
        }
      });
      const body = {
        from: opts.from,
        ...(opts.to.length ? { to: opts.to } : {}),
        ...(opts.cc.length ? { cc: opts.cc } : {}),
        ...(opts.bcc.length ? { bcc: opts.bcc } : {}),
        ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
        ...(opts.text !== undefined ? { text: opts.text } : {}),
        ...(opts.html !== undefined ? { html: opts.html } : {}),
        ...(attachments.length ? { attachments } : {}),
        ...(opts.tag.length ? { tags: opts.tag } : {}),
        ...(opts.stream ? { stream: opts.stream } : {}),
        ...(opts.template
          ? { template: { [/^\d{10,}/.test(opts.template) ? 'id' : 'alias']: opts.template, variables } }
          : {}),
        ...(opts.sendAt ? { send_at: opts.sendAt } : {}),
      };
      const url = `${(opts.url ?? baseUrl(configFrom(globals()).http.listen)).replace(/\/$/, '')}/v1/messages`;
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (err) {
        throw new CliError(
          `cannot reach ${url}: ${(err as Error).cause ?? (err as Error).message} (is Postbote running?)`,
        );
      }
      const answer = (await response.json().catch(() => ({}))) as {
        id?: string;
        recipients?: { email: string; status: string }[];
        error?: { code: string; message: string; field?: string };
      };
      if (!response.ok) {
        const e = answer.error;
        throw new CliError(
          e
            ? `${e.code}: ${e.message}${e.field ? ` (${e.field})` : ''}`
            : `the API answered ${response.status}`,
        );
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
        return;
      }
      process.stdout.write(`accepted as ${answer.id}\n`);
      for (const r of answer.recipients ?? []) process.stdout.write(`  ${r.email}: ${r.status}\n`);
    });
}
