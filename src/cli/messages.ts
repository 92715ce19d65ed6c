import type { Command } from 'commander';
import { requireAccount } from '../auth/accounts.ts';
import { RECIPIENT_STATES, type RecipientState } from '../store/types.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

const STATES = RECIPIENT_STATES;

function replyText(
  reply: { code: number; enhanced?: string; text: string } | null | undefined,
): string | null {
  return reply
    ? [reply.code, reply.enhanced, reply.text].filter((p) => p !== undefined && p !== '').join(' ')
    : null;
}

export function registerMessages(program: Command, globals: () => GlobalOptions): void {
  const messages = program.command('messages').description('look at messages and their delivery');
  messages
    .command('list')
    .description('list recent messages, newest first')
    .option('--account <name>', 'only this account')
    .option('--recipient <address>', 'only messages to this address')
    .option('--status <state>', `only messages with a recipient in this state (${STATES.join(', ')})`)
    .option('--limit <n>', 'how many', '50')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        account?: string;
        recipient?: string;
        status?: string;
        limit: string;
        json?: boolean;
      }) => {
        if (opts.status !== undefined && !STATES.includes(opts.status as RecipientState)) {
          throw new CliError(`--status must be one of ${STATES.join(', ')}`, 2);
        }
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
          throw new CliError('--limit must be 1-1000', 2);
        await withStore(globals(), async (store) => {
          const accountId = opts.account ? (await requireAccount(store, opts.account)).id : undefined;
          const list = await store.listMessages({
            ...(accountId ? { accountId } : {}),
            ...(opts.recipient ? { recipient: opts.recipient } : {}),
            ...(opts.status ? { status: opts.status as RecipientState } : {}),
            limit,
          });
          if (opts.json) {
            output(
              list.map((m) => ({ ...m, receivedAt: iso(m.receivedAt) })),
              true,
            );
            return;
          }
          output(
            list.map((m) => ({
              id: m.id,
              received: iso(m.receivedAt),
              from: m.mailFrom || '<>',
              stream: m.stream,
              to: m.recipients.length === 1 ? m.recipients[0]?.address : `${m.recipients.length} recipients`,
              status: summarise(m.recipients.map((r) => r.state)),
              subject: m.subject.length > 50 ? `${m.subject.slice(0, 47)}...` : m.subject,
            })),
            false,
          );
        });
      },
    );
  messages
    .command('show <id>')
    .description('a message, its recipients and the event timeline')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const message = await store.getMessage(id);
        if (!message) throw new CliError(`no message with id ${id}`);
        const recipients = await store.getRecipients(id);
        const events = await store.getEvents(id);
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ message, recipients, events }, null, 2)}\n`);
          return;
        }
        const out = process.stdout;
        out.write(`Message ${message.id}\n`);
        out.write(
          `  received:   ${iso(message.receivedAt)} from ${message.clientIp} via ${message.source}\n`,
        );
        out.write(`  envelope:   ${message.mailFrom || '<>'}\n`);
        out.write(`  stream:     ${message.stream}${recipients[0] ? ` (${recipients[0].kind})` : ''}\n`);
        out.write(
          `  message-id: ${message.messageIdHeader}\n  subject:    ${message.subject}\n  size:       ${message.size} bytes${message.bodyPurged ? ' (body deleted by retention)' : ''}\n`,
        );
        out.write('\nRecipients\n');
        for (const r of recipients) {
          const next = r.state === 'deferred' ? `, next attempt ${iso(r.nextAttemptAt)}` : '';
          out.write(`  ${r.address}: ${r.state} after ${r.attempts} attempt(s)${next}\n`);
          if (r.lastReply) out.write(`    last reply: ${replyText(r.lastReply)}\n`);
        }
        out.write('\nEvents\n');
        for (const e of events) {
          const d = e.data;
          const where = d.mxHost ? ` via ${d.mxHost}[${d.ip}]` : '';
          const tls = d.tls ? ` ${d.tls.protocol}` : d.mxHost ? ' no TLS' : '';
          const reply = d.reply ? ` — ${replyText(d.reply)}` : d.reason ? ` — ${d.reason}` : '';
          const attempt = d.attempt ? ` attempt ${d.attempt}` : '';
          out.write(
            `  ${iso(e.at)}  ${e.type.padEnd(9)} ${e.recipient ?? ''}${attempt}${where}${tls}${reply}\n`,
          );
        }
      });
    });
}

function summarise(states: RecipientState[]): string {
  const counts = new Map<string, number>();
  for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts].map(([s, n]) => (states.length === 1 ? s : `${n} ${s}`)).join(', ');
}
