import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressScope, applyAddressPolicy, isPrivateAddress } from '../../src/dns/address-policy.ts';

const table: Array<[string, ReturnType<typeof addressScope>]> = [
  // IPv4
  ['8.8.8.8', 'public'],
  ['93.184.216.34', 'public'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'reserved'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.0.0.1', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', 'public'],
  ['192.168.1.1', 'private'],
  ['100.64.0.1', 'shared'],
  ['100.127.255.255', 'shared'],
  ['100.128.0.1', 'public'],
  ['169.254.169.254', 'link-local'],
  ['192.0.2.1', 'documentation'],
  ['198.18.0.1', 'reserved'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  // IPv6
  ['2a00:1450:4001:82a::200e', 'public'],
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf::1', 'link-local'],
  ['fc00::1', 'unique-local'],
  ['fd12:3456:789a::1', 'unique-local'],
  ['ff02::1', 'multicast'],
  ['2001:db8::1', 'documentation'],
  ['100::1', 'reserved'],
  ['4000::1', 'reserved'],
  // IPv4 inside IPv6
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::FFFF:10.1.2.3', 'private'],
  ['::ffff:169.254.1.1', 'link-local'],
  ['::ffff:8.8.8.8', 'public'],
  ['64:ff9b::192.168.0.1', 'private'],
  ['64:ff9b::8.8.8.8', 'public'],
  ['::127.0.0.1', 'reserved'],
];

for (const [address, scope] of table) {
  test(`${address} is ${scope}`, () => {
    assert.equal(addressScope(address), scope);
    assert.equal(isPrivateAddress(address), scope !== 'public');
  });
}

test('something that is not an IP address is refused, not classified', () => {
  assert.throws(() => isPrivateAddress('mx.example.test'), TypeError);
  assert.throws(() => isPrivateAddress('256.1.1.1'), TypeError);
});

const hosts = [
  { name: 'local.example.test', preference: 10, addresses: ['127.0.0.2'] },
  { name: 'mixed.example.test', preference: 20, addresses: ['10.0.0.5', '8.8.4.4'] },
  { name: 'public.example.test', preference: 30, addresses: ['8.8.8.8', '2a00:1450::1'] },
];

test('private MX hosts are refused with a reason when allow_private_mx is off', () => {
  const result = applyAddressPolicy(hosts, { allowPrivate: false });
  assert.deepEqual(result.hosts, [
    { name: 'mixed.example.test', preference: 20, addresses: ['8.8.4.4'] },
    { name: 'public.example.test', preference: 30, addresses: ['8.8.8.8', '2a00:1450::1'] },
  ]);
  assert.deepEqual(result.refused[0], {
    name: 'local.example.test',
    addresses: ['127.0.0.2'],
    wholeHost: true,
    reason:
      'MX host local.example.test resolves only to private/loopback addresses (127.0.0.2); refused because delivery.allow_private_mx is off',
  });
  assert.equal(result.refused[1]?.name, 'mixed.example.test');
  assert.equal(result.refused[1]?.wholeHost, false);
  assert.deepEqual(result.refused[1]?.addresses, ['10.0.0.5']);
  assert.equal(result.refused.length, 2);
});

test('with allow_private_mx on, every host passes unchanged', () => {
  const result = applyAddressPolicy(hosts, { allowPrivate: true });
  assert.deepEqual(result.hosts, hosts);
  assert.deepEqual(result.refused, []);
});
