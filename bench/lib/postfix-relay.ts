/**
 * A stock Postfix relay for comparison, configured from scratch in a private directory
 * (`postfix -c DIR start-fg`): queue on disk (Postfix fsyncs each queue file before its 250),
 * mynetworks = loopback, relayhost = the sink, in_flow_delay = 0, no chroot, listener on a
 * high loopback port. Nothing in /etc/postfix is read or changed.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  type Child,
  type Cleanup,
  descendants,
  freePort,
  isAlive,
  sleep,
  startChild,
  waitForListener,
} from './processes.ts';

const run = promisify(execFile);
export const POSTFIX = '/usr/sbin/postfix';

export function postfixAvailable(): { ok: true } | { ok: false; reason: string } {
  if (!existsSync(POSTFIX)) return { ok: false, reason: 'postfix is not installed' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'the Postfix master must be started as root' };
  return { ok: true };
}

export async function postfixVersion(): Promise<string> {
  try {
    const { stdout } = await run('/usr/sbin/postconf', ['-d', '-h', 'mail_version'], { timeout: 10_000 });
    return stdout.trim();
  } catch {
    return 'unknown';
  }
}

export interface PostfixRelay {
  readonly port: number;
  readonly dir: string;
  /** The master and every process it started (for RSS sampling). */
  processes(): number[];
  /** `delay=` of every `status=sent` line in the mail log (seconds, arrival → delivered). */
  deliveryDelays(): { sent: number; deferred: number; bounced: number; delays: number[] };
  stop(): Promise<void>;
}

// The services a relay uses; every chroot column is "n" so no copy of /etc is needed.
const masterCf = (port: number): string =>
  `# service type private unpriv chroot wakeup maxproc command
127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

const mainCf = (dir: string, sinkPort: number): string =>
  `# Written by bench/relay.ts: a loopback relay to the benchmark's smtp-sink. Stock settings otherwise.
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-relay.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:${sinkPort}
in_flow_delay = 0
maillog_file = ${dir}/maillog
maillog_file_prefixes = ${dir}
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
`;

function postfixIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postfix:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error('no postfix user in /etc/passwd');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Writes the config into `dir` (which the postfix user must be able to traverse) and starts it. */
export async function startPostfixRelay(options: {
  dir: string;
  sinkPort: number;
  cleanup: Cleanup;
}): Promise<PostfixRelay> {
  const { dir, cleanup } = options;
  const conf = join(dir, 'conf');
  mkdirSync(conf, { recursive: true });
  mkdirSync(join(dir, 'queue'), { recursive: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  const { uid, gid } = postfixIds();
  chownSync(join(dir, 'data'), uid, gid);
  const port = await freePort();
  writeFileSync(join(conf, 'main.cf'), mainCf(dir, options.sinkPort));
  writeFileSync(join(conf, 'master.cf'), masterCf(port));
  // `check` creates the queue directories with the right owners and modes.
  await run(POSTFIX, ['-c', conf, 'check'], { timeout: 60_000 });

  let output = '';
  const keep = (c: Buffer): void => {
    output = (output + c.toString()).slice(-4000);
  };
  const fg: Child = startChild(POSTFIX, ['-c', conf, 'start-fg'], {
    name: 'postfix start-fg',
    cleanup,
    onStdout: keep,
    onStderr: keep,
  });
  const masterPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(dir, 'queue', 'pid', 'master.pid'), 'utf8').trim());
      return Number.isFinite(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  const processes = (): number[] => {
    const master = masterPid();
    return master && isAlive(master) ? [master, ...descendants(master)] : [];
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const before = processes();
    try {
      await run(POSTFIX, ['-c', conf, 'stop'], { timeout: 30_000 });
    } catch {
      try {
        await run(POSTFIX, ['-c', conf, 'abort'], { timeout: 30_000 });
      } catch {
        // the kills below still end it
      }
    }
    await fg.stop('SIGTERM', 15_000);
    // Postfix daemons exit when the master goes; make sure of it, by the pids we saw.
    const deadline = Date.now() + 10_000;
    while (before.some(isAlive) && Date.now() < deadline) await sleep(100);
    for (const pid of before.filter(isAlive)) {
      process.stderr.write(`postfix process ${pid} still running after stop; SIGKILL\n`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const unregister = cleanup.add('postfix relay', stop);

  try {
    await Promise.race([
      waitForListener(port, { timeoutMs: 30_000, greeting: true, what: 'Postfix relay' }),
      fg.exited.then((exit) => {
        throw new Error(`postfix start-fg exited (${exit.code ?? exit.signal}) before listening:\n${output}`);
      }),
    ]);
  } catch (err) {
    await stop();
    unregister();
    throw err;
  }

  return {
    port,
    dir,
    processes,
    deliveryDelays() {
      const log = existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : '';
      const delays: number[] = [];
      let sent = 0;
      let deferred = 0;
      let bounced = 0;
      for (const line of log.split('\n')) {
        if (line.includes('status=sent')) {
          sent++;
          const m = /\bdelay=([\d.]+)/.exec(line);
          if (m) delays.push(Number(m[1]));
        } else if (line.includes('status=deferred')) deferred++;
        else if (line.includes('status=bounced')) bounced++;
      }
      return { sent, deferred, bounced, delays };
    },
    async stop() {
      await stop();
      unregister();
    },
  };
}
