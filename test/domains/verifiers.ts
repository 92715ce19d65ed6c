/**
 * Independent checkers for the sending-domain tests: dkimpy (Debian `python3-dkim`, Ed25519
 * through `python3-nacl`) verifies DKIM signatures offline with our TXT records, and
 * `nsd-checkzone` (Debian `nsd`) parses our zone lines. A missing one skips its test with the
 * reason, except in CI (`CI` set), where .ci/run installs them and a missing one fails.
 *
 * OpenDKIM is not used: `opendkim-testmsg` (opendkim-tools) only verifies against live DNS,
 * and offline verification (`opendkim -t` with test DNS data) needs the daemon package.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tempDir } from '../support/temp-dir.ts';

function unavailable(t: TestContext, reason: string): false {
  if (process.env.CI) assert.fail(`${reason}: CI must have it (.ci/run installs it)`);
  t.skip(reason);
  return false;
}

// --- dkimpy ---------------------------------------------------------------------------------

interface Dkimpy {
  python: string;
  ed25519: boolean;
}

let dkimpy: Dkimpy | null | undefined;

/**
 * The Debian interpreter first: a python3 earlier on PATH (pyenv, a venv) does not see
 * Debian's dist-packages.
 */
function findDkimpy(): Dkimpy | null {
  if (dkimpy !== undefined) return dkimpy;
  dkimpy = null;
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(
      python,
      [
        '-c',
        'import dkim\ntry:\n import nacl.signing\n print("ed25519")\nexcept ImportError:\n print("rsa")',
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    if (probe.status === 0) {
      dkimpy = { python, ed25519: probe.stdout.trim() === 'ed25519' };
      break;
    }
  }
  return dkimpy;
}

/** True when dkimpy can verify signatures of these algorithms here; otherwise skips (or fails in CI). */
export function haveDkimpy(t: TestContext, algorithms: ('rsa' | 'ed25519')[]): boolean {
  const found = findDkimpy();
  if (!found) return unavailable(t, 'dkimpy not installed (Debian package python3-dkim)');
  if (algorithms.includes('ed25519') && !found.ed25519) {
    return unavailable(t, 'dkimpy cannot verify Ed25519 without PyNaCl (Debian package python3-nacl)');
  }
  return true;
}

const VERIFY_SCRIPT = `
import dkim, json, sys
records = json.loads(sys.argv[1])
message = sys.stdin.buffer.read()
def dnsfunc(name, timeout=5):
    text = records.get(name.decode('ascii').rstrip('.'))
    return text.encode('ascii') if text is not None else None
verifier = dkim.DKIM(message)
results = []
for index in range(int(sys.argv[2])):
    try:
        results.append({'ok': bool(verifier.verify(idx=index, dnsfunc=dnsfunc))})
    except Exception as error:
        results.append({'ok': False, 'error': '%s: %s' % (type(error).__name__, error)})
print(json.dumps(results))
`;

export interface DkimpyResult {
  ok: boolean;
  error?: string;
}

/**
 * Verifies each of the first `count` DKIM-Signature fields with dkimpy; `records` maps
 * `<selector>._domainkey.<domain>` to the TXT text.
 */
export function dkimpyVerify(
  message: Buffer,
  records: Record<string, string>,
  count: number,
): DkimpyResult[] {
  const found = findDkimpy();
  assert.ok(found, 'dkimpy is not available');
  const run = spawnSync(found.python, ['-c', VERIFY_SCRIPT, JSON.stringify(records), String(count)], {
    input: message,
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(run.status, 0, `dkimpy failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as DkimpyResult[];
}

// --- nsd-checkzone --------------------------------------------------------------------------

const NSD_CHECKZONE = ['/usr/sbin/nsd-checkzone', '/usr/bin/nsd-checkzone'].find(
  (path) => spawnSync(path, ['-h'], { timeout: 5_000 }).error === undefined,
);

export function haveNsdCheckzone(t: TestContext): boolean {
  return NSD_CHECKZONE ? true : unavailable(t, 'nsd-checkzone not installed (Debian package nsd)');
}

/**
 * Runs nsd-checkzone on a zone of `origin` made of an SOA, an NS and `lines`. With `print`,
 * nsd prints the zone back as it read it (one record per line) when it is valid.
 */
export function checkZone(origin: string, lines: string[], print = false): { ok: boolean; output: string } {
  assert.ok(NSD_CHECKZONE, 'nsd-checkzone is not available');
  const dir = tempDir('postbote-zone-');
  try {
    const file = join(dir.path, 'zone');
    const soa = `@ 3600 IN SOA ns1.${origin}. hostmaster.${origin}. 1 7200 3600 1209600 3600`;
    writeFileSync(file, [`$ORIGIN ${origin}.`, soa, `@ 3600 IN NS ns1.${origin}.`, ...lines, ''].join('\n'));
    const args = [...(print ? ['-p'] : []), origin, file];
    const run = spawnSync(NSD_CHECKZONE, args, { encoding: 'utf8', timeout: 10_000 });
    return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` };
  } finally {
    dir.cleanup();
  }
}
