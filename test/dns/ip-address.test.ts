import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIp, reverseName } from '../../src/dns/ip-address.ts';

test('IPv4 reverse names use in-addr.arpa', () => {
  assert.equal(reverseName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
});

test('IPv6 reverse names use one nibble per label under ip6.arpa', () => {
  assert.equal(
    reverseName('2001:db8::567:89ab'),
    'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa',
  );
});

test('IPv6 forms with :: and a dotted IPv4 tail expand to the same bytes', () => {
  const expected = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1];
  assert.deepEqual([...(parseIp('::ffff:127.0.0.1')?.bytes ?? [])], expected);
  assert.deepEqual([...(parseIp('0:0:0:0:0:ffff:7f00:0001')?.bytes ?? [])], expected);
  assert.deepEqual([...(parseIp('1::')?.bytes ?? [])], [0, 1, ...new Array(14).fill(0)]);
  assert.deepEqual(
    [...(parseIp('1:2:3:4:5:6:7.8.9.10')?.bytes ?? [])],
    [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 7, 8, 9, 10],
  );
});

test('invalid addresses are rejected', () => {
  assert.equal(parseIp('1.2.3'), undefined);
  assert.equal(parseIp('1::2::3'), undefined);
  assert.throws(() => reverseName('example.test'), TypeError);
});
