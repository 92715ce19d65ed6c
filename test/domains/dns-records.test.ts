import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateDkimKey } from '../../src/domains/dkim-keys.ts';
import {
  DnsRecordInputError,
  type RecordsInput,
  recordsToPublish,
  toZoneLines,
  txtStrings,
} from '../../src/domains/dns-records.ts';
import { checkZone, haveNsdCheckzone } from './verifiers.ts';

// Stand-ins with the right sizes: 294 bytes is the DER of an RSA-2048 SubjectPublicKeyInfo.
const RSA_P = Buffer.alloc(294, 0xa5).toString('base64');
const ED_P = Buffer.alloc(32, 0x5a).toString('base64');

function input(overrides: Partial<RecordsInput> = {}): RecordsInput {
  return {
    domain: 'example.com',
    dkim: [
      { selector: 'pb20261103-rsa-k7q2', algorithm: 'rsa', publicKey: RSA_P },
      { selector: 'pb20261103-ed25519-m4xa', algorithm: 'ed25519', publicKey: ED_P },
    ],
    returnPath: 'bounces.example.com',
    mxHost: 'mx.postbote.example.net',
    trackingHost: 'click.example.com',
    trackingTarget: 'track.postbote.example.net',
    egressIps: ['192.0.2.10', '2001:DB8::10'],
    dmarcRua: 'dmarc-reports@example.com',
    ...overrides,
  };
}

const isError = (field: string) => (error: unknown) =>
  error instanceof DnsRecordInputError && error.field === field;

test('every record of a sending domain, with its name, value and purpose', () => {
  const records = recordsToPublish(input());
  assert.deepEqual(
    records.map(({ type, name, value, purpose }) => ({ type, name, value, purpose })),
    [
      {
        type: 'TXT',
        name: 'pb20261103-rsa-k7q2._domainkey.example.com',
        value: `v=DKIM1; k=rsa; p=${RSA_P}`,
        purpose: 'dkim',
      },
      {
        type: 'TXT',
        name: 'pb20261103-ed25519-m4xa._domainkey.example.com',
        value: `v=DKIM1; k=ed25519; p=${ED_P}`,
        purpose: 'dkim',
      },
      { type: 'MX', name: 'bounces.example.com', value: 'mx.postbote.example.net', purpose: 'return_path' },
      {
        type: 'TXT',
        name: 'bounces.example.com',
        value: 'v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all',
        purpose: 'spf',
      },
      {
        type: 'TXT',
        name: '_dmarc.example.com',
        value: 'v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com',
        purpose: 'dmarc',
      },
      { type: 'CNAME', name: 'click.example.com', value: 'track.postbote.example.net', purpose: 'tracking' },
    ],
  );
  const mx = records.find((r) => r.type === 'MX');
  assert.equal(mx?.type === 'MX' && mx.priority, 10);
  for (const record of records) assert.ok(record.description.length > 0);
});

test('zone lines: absolute names, TTL 3600, TXT quoted and cut at 255 characters', () => {
  const lines = toZoneLines(recordsToPublish(input()));
  const rsaValue = `v=DKIM1; k=rsa; p=${RSA_P}`;
  assert.equal(rsaValue.length, 410);
  assert.deepEqual(lines, [
    `pb20261103-rsa-k7q2._domainkey.example.com. 3600 IN TXT "${rsaValue.slice(0, 255)}" "${rsaValue.slice(255)}"`,
    `pb20261103-ed25519-m4xa._domainkey.example.com. 3600 IN TXT "v=DKIM1; k=ed25519; p=${ED_P}"`,
    'bounces.example.com. 3600 IN MX 10 mx.postbote.example.net.',
    'bounces.example.com. 3600 IN TXT "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all"',
    '_dmarc.example.com. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com"',
    'click.example.com. 3600 IN CNAME track.postbote.example.net.',
  ]);
});

test('a 4096-bit DKIM key record is cut into strings of at most 255 that join back to the value', async () => {
  const key = await generateDkimKey('rsa', { bits: 4096, now: new Date('2026-11-03T00:00:00Z') });
  const [record] = recordsToPublish(input({ dkim: [key] }));
  assert.ok(record?.type === 'TXT');
  assert.ok(record.value.length > 700);
  assert.equal(record.strings.length, Math.ceil(record.value.length / 255));
  for (const part of record.strings) assert.ok(part.length <= 255 && part.length > 0);
  assert.equal(record.strings.join(''), record.value);
  const [line] = toZoneLines([record]);
  assert.equal(line, `${record.name}. 3600 IN TXT ${record.strings.map((s) => `"${s}"`).join(' ')}`);
});

test('nsd reads the zone lines as the records meant (valid zone syntax, strings joined back)', async (t) => {
  if (!haveNsdCheckzone(t)) return;
  const key = await generateDkimKey('rsa', { bits: 4096, now: new Date('2026-11-03T00:00:00Z') });
  const records = recordsToPublish(input({ dkim: [key, input().dkim[1]!] }));
  const { ok, output } = checkZone('example.com', toZoneLines(records), true);
  assert.ok(ok, output);
  // nsd prints names relative to the $ORIGIN lines it inserts.
  const dkimLine = output.split('\n').find((l) => l.startsWith(`${key.selector}\t`));
  assert.ok(dkimLine, output);
  const strings = [...dkimLine.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  assert.equal(strings.join(''), `v=DKIM1; k=rsa; p=${key.publicKey}`);
  assert.match(output, /^bounces\s+3600\s+IN\s+MX\s+10 mx\.postbote\.example\.net\.$/m);
  assert.match(output, /^click\s+3600\s+IN\s+CNAME\s+track\.postbote\.example\.net\.$/m);
});

test('the same checker refuses an unsplit long TXT (what the splitting is for)', (t) => {
  if (!haveNsdCheckzone(t)) return;
  const { ok, output } = checkZone('example.com', [`x.example.com. 3600 IN TXT "${'a'.repeat(300)}"`]);
  assert.equal(ok, false);
  assert.match(output, /longer than 255/);
});

test('SPF lists each egress address or block once, or only the include when one is set', () => {
  const spf = (overrides: Partial<RecordsInput>) =>
    recordsToPublish(input(overrides)).find((r) => r.purpose === 'spf')?.value;
  assert.equal(
    spf({ egressIps: ['192.0.2.10', '198.51.100.0/28', '192.0.2.10', '2001:db8::/48'] }),
    'v=spf1 ip4:192.0.2.10 ip4:198.51.100.0/28 ip6:2001:db8::/48 ~all',
  );
  assert.equal(
    spf({ spfInclude: '_spf.postbote.example.net.' }),
    'v=spf1 include:_spf.postbote.example.net ~all',
  );
  assert.throws(() => recordsToPublish(input({ egressIps: [] })), isError('egressIps'));
  assert.throws(() => recordsToPublish(input({ egressIps: ['192.0.2.300'] })), isError('egressIps[0]'));
  assert.throws(() => recordsToPublish(input({ egressIps: ['192.0.2.0/33'] })), isError('egressIps[0]'));
});

test('SPF with many addresses is split like any TXT, at 255 characters', () => {
  const egressIps = Array.from({ length: 30 }, (_, i) => `198.51.100.${i + 1}`);
  const spf = recordsToPublish(input({ egressIps })).find((r) => r.purpose === 'spf');
  assert.ok(spf?.type === 'TXT');
  assert.ok(spf.strings.length > 1);
  assert.equal(spf.strings.join(''), spf.value);
  assert.ok(spf.value.startsWith('v=spf1 ip4:198.51.100.1 ') && spf.value.endsWith(' ~all'));
});

test('DMARC is a p=none suggestion; rua is optional and may come as a mailto: URI', () => {
  const dmarc = (overrides: Partial<RecordsInput>) =>
    recordsToPublish(input(overrides)).find((r) => r.purpose === 'dmarc')?.value;
  assert.equal(dmarc({ dmarcRua: undefined }), 'v=DMARC1; p=none');
  assert.equal(
    dmarc({ dmarcRua: 'mailto:reports@example.com' }),
    'v=DMARC1; p=none; rua=mailto:reports@example.com',
  );
  assert.throws(() => recordsToPublish(input({ dmarcRua: 'not an address' })), isError('dmarcRua'));
  assert.throws(() => recordsToPublish(input({ dmarcRua: 'a@b.com; p=reject' })), isError('dmarcRua'));
});

test('names are normalised: case, trailing dot, IDN to punycode', () => {
  const records = recordsToPublish(
    input({
      domain: 'Bücher.Example.',
      returnPath: 'bounces.bücher.example',
      trackingHost: 'click.bücher.example',
    }),
  );
  assert.deepEqual(
    [...new Set(records.map((r) => r.name))],
    [
      'pb20261103-rsa-k7q2._domainkey.xn--bcher-kva.example',
      'pb20261103-ed25519-m4xa._domainkey.xn--bcher-kva.example',
      'bounces.xn--bcher-kva.example',
      '_dmarc.xn--bcher-kva.example',
      'click.xn--bcher-kva.example',
    ],
  );
});

test('setups that would break the customer’s DNS are refused', () => {
  // MX + SPF at the domain itself would take over its inbound mail and replace its SPF.
  assert.throws(() => recordsToPublish(input({ returnPath: 'example.com' })), isError('returnPath'));
  // A CNAME cannot share its name with the return path's MX and SPF, nor sit at the apex.
  assert.throws(
    () => recordsToPublish(input({ trackingHost: 'bounces.example.com' })),
    isError('trackingHost'),
  );
  assert.throws(() => recordsToPublish(input({ trackingHost: 'example.com' })), isError('trackingHost'));
  assert.throws(
    () => recordsToPublish(input({ trackingTarget: 'click.example.com' })),
    isError('trackingTarget'),
  );
  assert.throws(() => recordsToPublish(input({ domain: 'localhost' })), isError('domain'));
  assert.throws(() => recordsToPublish(input({ mxHost: 'mx_1.example.net' })), isError('mxHost'));
  assert.throws(() => recordsToPublish(input({ mxHost: '192.0.2.1' })), isError('mxHost'));
});

test('DKIM keys are checked: selector syntax, base64, and a raw 32-byte Ed25519 key', () => {
  const dkim = (key: RecordsInput['dkim'][number]) => () => recordsToPublish(input({ dkim: [key] }));
  assert.throws(
    dkim({ selector: 'bad.selector', algorithm: 'rsa', publicKey: RSA_P }),
    isError('dkim[0].selector'),
  );
  assert.throws(
    dkim({ selector: 's1', algorithm: 'rsa', publicKey: 'not base64!' }),
    isError('dkim[0].publicKey'),
  );
  // An Ed25519 SubjectPublicKeyInfo (44 bytes) is a common mistake; receivers reject it.
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.alloc(32, 1)]);
  assert.throws(
    dkim({ selector: 's1', algorithm: 'ed25519', publicKey: spki.toString('base64') }),
    isError('dkim[0].publicKey'),
  );
});

test('txtStrings keeps short texts whole and never yields an empty list', () => {
  assert.deepEqual(txtStrings('v=spf1 -all'), ['v=spf1 -all']);
  assert.deepEqual(txtStrings(''), ['']);
  assert.deepEqual(txtStrings('a'.repeat(510)), ['a'.repeat(255), 'a'.repeat(255)]);
});

test('spf: false leaves the SPF record out (a trusted domain on a node without known addresses)', () => {
  const records = recordsToPublish(input({ egressIps: [], spf: false }));
  assert.ok(!records.some((r) => r.purpose === 'spf'));
  assert.ok(records.some((r) => r.purpose === 'dmarc'));
});
