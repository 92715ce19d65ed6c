/**
 * An in-process authoritative DNS server for tests: UDP and TCP on 127.0.0.1, random port.
 *
 * It answers only from its zone table, like an authoritative server would (RFC 1034 §4.3.2):
 * - a name that is not in the table (and is not an ancestor of a name in it) → NXDOMAIN;
 * - a name that exists but has no record of the asked type → NOERROR with no answer (NODATA);
 *   ancestors of listed names exist as empty non-terminals (RFC 8020), so they answer NODATA too;
 * - a CNAME is followed inside the table and the chain is returned in one answer, as a
 *   resolver would return it to a stub (RFC 1034 §3.6.2).
 * A UDP answer larger than the client's buffer (512 bytes, or its EDNS payload size) is sent
 * truncated with TC set (RFC 1035 §4.2.1), so the client retries over TCP (RFC 7766).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Answer, DecodedPacket, Packet, RecordType, StringAnswer } from 'dns-packet';
import dnsPacket from 'dns-packet';

export type Ttl = { ttl?: number };
export type StringRecord = string | ({ value: string } & Ttl);
export type TxtRecord = string | string[] | ({ value: string | string[] } & Ttl);
export type MxRecord = { preference: number; exchange: string } & Ttl;

export interface ZoneRecords {
  A?: StringRecord[];
  AAAA?: StringRecord[];
  CNAME?: StringRecord[];
  NS?: StringRecord[];
  PTR?: StringRecord[];
  MX?: MxRecord[];
  TXT?: TxtRecord[];
}

export type Zones = Record<string, ZoneRecords>;
export type FailureMode = 'SERVFAIL' | 'TIMEOUT' | 'REFUSED';
export type Transport = 'udp' | 'tcp';

export interface LoggedQuery {
  name: string;
  type: string;
  transport: Transport;
}

export interface DnsServerOptions {
  zones?: Zones;
  /** TTL in seconds of records that do not carry their own (default 300). */
  ttl?: number;
}

export interface TestDnsServer {
  /** `127.0.0.1:PORT`, usable as an entry of the resolver's `servers`. */
  readonly address: string;
  readonly port: number;
  /** Every question received, in order (names lower-cased, without trailing dot). */
  readonly queries: LoggedQuery[];
  set(name: string, records: ZoneRecords): void;
  remove(name: string): void;
  /** Script a failure for `name` (all types, or only `type`). */
  fail(name: string, mode: FailureMode, type?: string): void;
  clearFailure(name: string, type?: string): void;
  /** Number of logged queries for `name` (and `type`, if given). */
  count(name: string, type?: string): number;
  close(): Promise<void>;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
const MAX_CNAME_CHAIN = 8;
// RFC 1035 §2.3.4: UDP messages without EDNS are limited to 512 bytes.
const CLASSIC_UDP_LIMIT = 512;

const normalize = (name: string): string => name.toLowerCase().replace(/\.$/, '');

/** Starts the server; it listens until `close()`. */
export async function startDnsServer(options: DnsServerOptions = {}): Promise<TestDnsServer> {
  const defaultTtl = options.ttl ?? 300;
  const zones = new Map<string, ZoneRecords>();
  for (const [name, records] of Object.entries(options.zones ?? {})) zones.set(normalize(name), records);
  const failures = new Map<string, FailureMode>();
  const queries: LoggedQuery[] = [];
  const sockets = new Set<net.Socket>();

  const nameExists = (name: string): boolean => {
    if (zones.has(name)) return true;
    for (const key of zones.keys()) if (key.endsWith(`.${name}`)) return true;
    return false;
  };

  const failureFor = (name: string, type: string): FailureMode | undefined =>
    failures.get(`${name} ${type}`) ?? failures.get(`${name} *`);

  /** Builds the response, or undefined when the query must go unanswered (TIMEOUT). */
  const answerQuery = (query: DecodedPacket, transport: Transport): Packet | undefined => {
    const question = query.questions?.[0];
    const base = {
      type: 'response' as const,
      id: query.id ?? 0,
      questions: query.questions ?? [],
    };
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED);
    const ednsOpt = query.additionals?.some((a) => a.type === 'OPT');
    // RFC 6891 §7: a responder that understands EDNS includes an OPT record in its reply.
    const additionals: Answer[] = ednsOpt
      ? [
          {
            type: 'OPT',
            name: '.',
            udpPayloadSize: 1232,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: 0,
            flag_do: false,
            options: [],
          },
        ]
      : [];
    if (!question) return { ...base, flags: flags | 1, additionals }; // FORMERR

    const name = normalize(question.name);
    queries.push({ name, type: question.type, transport });
    const failure = failureFor(name, question.type);
    if (failure === 'TIMEOUT') return undefined;
    if (failure) return { ...base, flags: flags | RCODE[failure], additionals };

    const answers: Answer[] = [];
    let current = name;
    for (let hop = 0; hop <= MAX_CNAME_CHAIN; hop++) {
      const records = zones.get(current);
      if (!records) break;
      const direct = recordsOf(records, question.type, current, defaultTtl);
      if (direct.length > 0 || question.type === 'CNAME') {
        answers.push(...direct);
        break;
      }
      const alias = recordsOf(records, 'CNAME', current, defaultTtl)[0];
      if (!alias) break;
      answers.push(alias);
      current = normalize((alias as StringAnswer).data);
    }
    const rcode = answers.length > 0 || nameExists(name) ? RCODE.NOERROR : RCODE.NXDOMAIN;
    return { ...base, flags: flags | rcode, answers, additionals };
  };

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      // RFC 1035 §4.2.2: each TCP message is prefixed with its two-byte length.
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        const query = decode(message);
        if (!query) continue;
        const response = answerQuery(query, 'tcp');
        if (response && !socket.destroyed) socket.write(dnsPacket.streamEncode(response));
      }
    });
  });

  const onUdpMessage = (udp: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): void => {
    const query = decode(message);
    if (!query) return;
    const response = answerQuery(query, 'udp');
    if (!response) return;
    const opt = query.additionals?.find((a) => a.type === 'OPT');
    const limit =
      opt && 'udpPayloadSize' in opt ? Math.max(opt.udpPayloadSize, CLASSIC_UDP_LIMIT) : CLASSIC_UDP_LIMIT;
    let encoded = dnsPacket.encode(response);
    if (encoded.length > limit) {
      encoded = dnsPacket.encode({
        ...response,
        flags: (response.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE,
        answers: [],
      });
    }
    udp.send(encoded, remote.port, remote.address);
  };

  const createUdp = (): dgram.Socket => {
    const socket = dgram.createSocket('udp4');
    socket.on('message', (message, remote) => onUdpMessage(socket, message, remote));
    return socket;
  };
  const { udp, port } = await listenOnSharedPort(createUdp, tcp);

  return {
    address: `127.0.0.1:${port}`,
    port,
    queries,
    set(name, records) {
      zones.set(normalize(name), records);
    },
    remove(name) {
      zones.delete(normalize(name));
    },
    fail(name, mode, type = '*') {
      failures.set(`${normalize(name)} ${type}`, mode);
    },
    clearFailure(name, type = '*') {
      failures.delete(`${normalize(name)} ${type}`);
    },
    count(name, type) {
      const wanted = normalize(name);
      return queries.filter((q) => q.name === wanted && (type === undefined || q.type === type)).length;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}

function decode(message: Buffer): DecodedPacket | undefined {
  try {
    const packet = dnsPacket.decode(message);
    return packet.type === 'query' ? packet : undefined;
  } catch {
    return undefined; // garbage is ignored, as a real server would
  }
}

function recordsOf(records: ZoneRecords, type: string, owner: string, defaultTtl: number): Answer[] {
  const answer = (rrtype: RecordType, data: unknown, ttl: number | undefined): Answer =>
    ({ type: rrtype, name: owner, ttl: ttl ?? defaultTtl, class: 'IN', data }) as Answer;
  const strings = (
    rrtype: 'A' | 'AAAA' | 'CNAME' | 'NS' | 'PTR',
    list: StringRecord[] | undefined,
  ): Answer[] =>
    (list ?? []).map((r) =>
      typeof r === 'string' ? answer(rrtype, r, undefined) : answer(rrtype, r.value, r.ttl),
    );
  switch (type) {
    case 'A':
    case 'AAAA':
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return strings(type, records[type]);
    case 'MX':
      return (records.MX ?? []).map((r) =>
        answer('MX', { preference: r.preference, exchange: r.exchange.replace(/\.$/, '') }, r.ttl),
      );
    case 'TXT':
      return (records.TXT ?? []).map((r) => {
        const value = typeof r === 'string' || Array.isArray(r) ? r : r.value;
        const ttl = typeof r === 'string' || Array.isArray(r) ? undefined : r.ttl;
        return answer('TXT', txtStrings(value), ttl);
      });
    default:
      return [];
  }
}

/** RFC 1035 §3.3.14: a TXT record is a list of strings of at most 255 bytes each. */
function txtStrings(value: string | string[]): Buffer[] {
  const parts: Buffer[] = [];
  for (const text of Array.isArray(value) ? value : [value]) {
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length === 0) parts.push(bytes);
    for (let offset = 0; offset < bytes.length; offset += 255)
      parts.push(bytes.subarray(offset, offset + 255));
  }
  return parts;
}

/** UDP and TCP must share one port number (a resolver retries a truncated answer on the same port). */
async function listenOnSharedPort(
  createUdp: () => dgram.Socket,
  tcp: net.Server,
): Promise<{ udp: dgram.Socket; port: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, '127.0.0.1', () => {
        tcp.off('error', reject);
        resolve((tcp.address() as net.AddressInfo).port);
      });
    });
    const udp = createUdp();
    const bound = await new Promise<boolean>((resolve) => {
      const onError = (): void => resolve(false);
      udp.once('error', onError);
      udp.bind(port, '127.0.0.1', () => {
        udp.off('error', onError);
        resolve(true);
      });
    });
    if (bound) return { udp, port };
    try {
      udp.close();
    } catch {
      // never bound: nothing to close
    }
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }
  throw new Error('dns-server: could not bind UDP and TCP on the same port');
}
