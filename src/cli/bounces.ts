/**
 * `postbote bounces classify FILE...`: runs saved messages (bounces, complaints, auto-replies)
 * through the same parser and classifier the inbound MX uses, to check a sample or a rule change
 * before it matters. Needs no config and no store.
 */
import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Classifier } from '../bounces/classify.ts';
import type { ParsedReport } from '../bounces/parse.ts';
import { CliError, type GlobalOptions, output } from './context.ts';

/** The parser refuses larger messages; reading one byte more lets it say so. */
const MAX_BYTES = 10 * 1024 * 1024;

export function registerBounces(program: Command, _globals: () => GlobalOptions): void {
  const bounces = program.command('bounces').description('bounces, complaints and auto-replies');
  bounces
    .command('classify')
    .description(
      'parse saved messages (.eml, - for standard input) as the inbound MX does and show the kind, failed recipients and categories',
    )
    .argument('<file...>', 'message files')
    .option('--json', 'one JSON object per line per file')
    .option('--rules <file>', 'classify with this rule file instead of the bundled src/bounces/rules.yaml')
    .action(async (files: string[], opts: { json?: boolean; rules?: string }) => {
      // The MIME parser and its character sets, loaded for this command only.
      const { parseReport } = await import('../bounces/parse.ts');
      const classifier = opts.rules ? await rulesClassifier(opts.rules) : undefined;
      const rows: Record<string, unknown>[] = [];
      let unreadable = 0;
      for (const file of files) {
        let raw: Buffer;
        try {
          raw = await readMessage(file);
        } catch (err) {
          unreadable++;
          process.stderr.write(`postbote: cannot read ${file}: ${(err as Error).message}\n`);
          continue;
        }
        const report = parseReport(raw, classifier ? { classifier } : {});
        if (opts.json) process.stdout.write(`${JSON.stringify(jsonLine(file, report))}\n`);
        else rows.push(...tableRows(file, report));
      }
      if (!opts.json && rows.length > 0) {
        output(rows, false, [
          'file',
          'kind',
          'email',
          'status',
          'code',
          'category',
          'permanent',
          'diagnostic',
        ]);
      }
      if (unreadable > 0) throw new CliError(`${unreadable} of ${files.length} file(s) could not be read`);
    });
}

async function rulesClassifier(file: string): Promise<Classifier> {
  const { BounceRulesError, createClassifier, loadRules } = await import('../bounces/classify.ts');
  try {
    return createClassifier(loadRules(file));
  } catch (err) {
    if (err instanceof BounceRulesError) throw new CliError(err.message, 2);
    throw err;
  }
}

/** One report as a JSON object: the fields the issue names, snake_case like the API. */
export function jsonLine(file: string, report: ParsedReport): Record<string, unknown> {
  const line: Record<string, unknown> = {
    file,
    kind: report.kind,
    format: report.format,
    recipients: report.recipients.map((r) => ({
      email: r.email,
      status: r.status,
      code: r.code ?? null,
      category: r.category,
      permanent: r.permanent,
      diagnostic: r.diagnostic,
    })),
  };
  if (report.feedbackType) line['feedback_type'] = report.feedbackType;
  if (report.returnPathToken) line['return_path_token'] = report.returnPathToken;
  if (report.originalMessageId) line['original_message_id'] = report.originalMessageId;
  if (report.problem) line['problem'] = report.problem;
  return line;
}

function tableRows(file: string, report: ParsedReport): Record<string, unknown>[] {
  const kind = report.feedbackType ? `${report.kind} (${report.feedbackType})` : report.kind;
  if (report.recipients.length === 0) return [{ file, kind, diagnostic: report.problem }];
  return report.recipients.map((r) => ({
    file,
    kind,
    email: r.email,
    status: r.status || undefined,
    code: r.code,
    category: r.category,
    permanent: r.permanent ? 'hard' : 'soft',
    diagnostic: r.diagnostic.length > 72 ? `${r.diagnostic.slice(0, 71)}…` : r.diagnostic,
  }));
}

/** Reads at most MAX_BYTES + 1 bytes of a file, or of standard input for `-`. */
async function readMessage(file: string): Promise<Buffer> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of process.stdin) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      chunks.push(buf);
      size += buf.length;
      if (size > MAX_BYTES) break;
    }
    return Buffer.concat(chunks).subarray(0, MAX_BYTES + 1);
  }
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(MAX_BYTES + 1, (await handle.stat()).size));
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
