import type { Command } from 'commander';
import { cliActor, recordAudit } from '../audit/audit.ts';
import { requireAccount } from '../auth/accounts.ts';
import type { Config } from '../config/schema.ts';
import { createCheckResolver } from '../domains/checks/resolver.ts';
import { toZoneLines } from '../domains/dns-records.ts';
import { createDomains, DomainError, type DomainView } from '../domains/domains.ts';
import { SecretsKeyError } from '../domains/key-encryption.ts';
import type { Store } from '../store/store.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

function service(store: Store, config: Config) {
  return createDomains({ store, clock: Date.now, config });
}

async function withDomains<T>(
  globals: GlobalOptions,
  fn: (domains: ReturnType<typeof createDomains>, store: Store, config: Config) => Promise<T>,
): Promise<T> {
  return withStore(globals, async (store, config) => {
    try {
      return await fn(service(store, config), store, config);
    } catch (err) {
      if (err instanceof DomainError || err instanceof SecretsKeyError) throw new CliError(err.message);
      throw err;
    }
  });
}

function describe(view: DomainView) {
  return {
    domain: view.domain.domain,
    verified:
      view.domain.verifiedAt === null ? 'no' : `${view.domain.verifiedBy} ${iso(view.domain.verifiedAt)}`,
    returnPath: view.domain.returnPath,
    trackingHost: view.domain.trackingHost,
    keys: view.keys.map((k) => `${k.selector} (${k.algorithm}, ${k.state})`).join(', '),
    checkedAt: iso(view.domain.checkedAt),
  };
}

async function printRecords(
  domains: ReturnType<typeof createDomains>,
  view: DomainView,
  json: boolean | undefined,
) {
  const records = await domains.records(view);
  if (json) {
    output(
      records.map((r) => ({
        type: r.type,
        name: r.name,
        value: r.value,
        ...(r.type === 'MX' ? { priority: r.priority } : {}),
        purpose: r.purpose,
      })),
      true,
    );
    return;
  }
  process.stdout.write(
    `Publish these records in the DNS of ${view.domain.domain}, then run: postbote domains check ${view.domain.domain}\n\n`,
  );
  for (const line of toZoneLines(records)) process.stdout.write(`${line}\n`);
}

/** `postbote domains …`: sending domains, their DNS records, checks, DKIM rotation and trust. */
export function registerDomains(program: Command, globals: () => GlobalOptions): void {
  const domains = program.command('domains').description('sending domains: DKIM keys, DNS records, checks');
  domains
    .command('add <domain>')
    .description(
      'add a sending domain to an account: generates DKIM keys and prints the DNS records to publish',
    )
    .requiredOption('--account <name>', 'the account it belongs to')
    .option('--json', 'print the records as JSON ([{type, name, value, purpose}])')
    .action(async (domain: string, opts: { account: string; json?: boolean }) => {
      await withDomains(globals(), async (service, store) => {
        const view = await service.add(await requireAccount(store, opts.account), domain);
        await recordAudit(store, {
          actor: cliActor(),
          accountId: view.domain.accountId,
          action: 'domain.add',
          target: view.domain.domain,
        });
        await printRecords(service, view, opts.json);
      });
    });
  domains
    .command('records <domain>')
    .description('print the DNS records the domain should publish')
    .option('--json', 'print JSON')
    .action(async (domain: string, opts: { json?: boolean }) => {
      await withDomains(globals(), async (service) =>
        printRecords(service, await service.get(domain), opts.json),
      );
    });
  domains
    .command('list')
    .description('list sending domains')
    .option('--account <name>', 'only this account')
    .option('--json', 'print JSON')
    .action(async (opts: { account?: string; json?: boolean }) => {
      await withDomains(globals(), async (service, store) => {
        const accountId = opts.account ? (await requireAccount(store, opts.account)).id : undefined;
        const rows = [];
        for (const d of await service.list(accountId)) rows.push(describe(await service.get(d.domain)));
        output(rows, opts.json);
      });
    });
  domains
    .command('check <domain>')
    .description('check what the domain publishes in DNS: SPF, DKIM, DMARC, return path, tracking, PTR')
    .option('--json', 'print JSON')
    .action(async (domain: string, opts: { json?: boolean }) => {
      await withDomains(globals(), async (service, _store, config) => {
        const view = await service.get(domain);
        const resolve = createCheckResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeout });
        const { results, verified, changes } = await service.check(view, resolve);
        // Exit 1 while something is missing or wrong, so scripts can wait for a good setup.
        if (results.some((r) => r.status !== 'ok' && r.status !== 'warning')) process.exitCode = 1;
        if (opts.json) {
          output([{ domain: view.domain.domain, verified, changes, results }], true);
          return;
        }
        process.stdout.write(`${view.domain.domain}: ${verified ? 'verified' : 'not verified'}\n`);
        for (const change of changes) process.stdout.write(`  changed: ${change}\n`);
        for (const r of results) {
          process.stdout.write(`\n[${r.status.toUpperCase()}] ${r.record} ${r.name}\n  ${r.explanation}\n`);
          if (r.fix) process.stdout.write(`  fix: ${r.fix}\n`);
        }
      });
    });
  domains
    .command('encrypt-keys')
    .description(
      'encrypt every DKIM private key still stored as plaintext with the secrets key (secrets.key / POSTBOTE_SECRETS__KEY or secrets.key_file)',
    )
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withDomains(globals(), async (service) => {
        const result = await service.encryptKeys();
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(result)}\n`);
          return;
        }
        process.stdout.write(
          `${result.encrypted} DKIM key(s) encrypted, ${result.alreadyEncrypted} already encrypted\n`,
        );
      });
    });
  domains
    .command('rotate-dkim <domain>')
    .description(
      'start a DKIM key rotation: a new selector signs beside the current one until its record verifies',
    )
    .option('--json', 'print JSON')
    .action(async (domain: string, opts: { json?: boolean }) => {
      await withDomains(globals(), async (service, store) => {
        const view = await service.get(domain);
        const keys = await service.rotate(view);
        await recordAudit(store, {
          actor: cliActor(),
          accountId: view.domain.accountId,
          action: 'domain.rotate_dkim',
          target: view.domain.domain,
          details: { selectors: keys.map((k) => k.selector) },
        });
        if (opts.json) {
          output(
            keys.map((k) => ({ selector: k.selector, algorithm: k.algorithm, state: k.state })),
            true,
          );
          return;
        }
        process.stdout.write(
          `new DKIM key(s) ${keys.map((k) => k.selector).join(', ')} sign beside the current one; publish:\n\n`,
        );
        await printRecords(service, await service.get(domain), false);
        process.stdout.write(
          '\nOnce `postbote domains check` (or the periodic check) finds the new record, it replaces the old key.\n',
        );
      });
    });
  domains
    .command('trust <domain>')
    .description(
      'mark a domain verified for an account without DNS checks (DNS managed elsewhere); it still gets DKIM keys',
    )
    .requiredOption('--account <name>', 'the account')
    .option('--json', 'print JSON')
    .action(async (domain: string, opts: { account: string; json?: boolean }) => {
      await withDomains(globals(), async (service, store) => {
        const view = await service.trust(await requireAccount(store, opts.account), domain);
        await recordAudit(store, {
          actor: cliActor(),
          accountId: view.domain.accountId,
          action: 'domain.trust',
          target: view.domain.domain,
        });
        if (opts.json) output([describe(view)], true);
        else process.stdout.write(`${view.domain.domain} is verified (trusted by an administrator)\n`);
      });
    });
  domains
    .command('remove <domain>')
    .description('remove a sending domain and its keys')
    .action(async (domain: string) => {
      await withDomains(globals(), async (service, store) => {
        const view = await service.get(domain);
        await service.remove(view);
        await recordAudit(store, {
          actor: cliActor(),
          accountId: view.domain.accountId,
          action: 'domain.remove',
          target: view.domain.domain,
        });
        process.stdout.write(`${view.domain.domain} removed\n`);
      });
    });
}
