/**
 * `postbote queue summary`: the queue by domain and by site, the connections open now, the
 * current limits, and the traffic shaping in force (throttles, suspensions, open circuits).
 *
 * The shaping state lives in each node's delivery engine; the CLI sees it through the store:
 * the shaping events the engines write (Store.activeShaping) and their heartbeats (open
 * connections per site). What a node that is down, or has restarted since, had in force is gone
 * with its memory, so only events of live nodes since their start count.
 */
import type { Config } from '../config/schema.ts';
import { HEARTBEAT_MS } from '../delivery/heartbeat.ts';
import { createShapingPolicy, type ShapingPolicy } from '../delivery/shaping/policy.ts';
import { type Site, siteFromKey } from '../delivery/shaping/site.ts';
import type { Store } from '../store/store.ts';
import type { NodeStatus, QueueDomainSummary, ShapingEventRow } from '../store/types.ts';
import { iso, output } from './context.ts';

/** The limits of one (egress source, site) pair (shaping/limits.ts). */
export interface SiteLimits {
  /** The egress source (config egress.sources). */
  source: string;
  maxConnections: number;
  maxMessagesPerConnection: number;
  /** `600/min`, … ; [] = no message rate. */
  rates: string[];
  maxNewConnectionsPerMinute: number | null;
  /** null = delivery.starttls. */
  tls: string | null;
}

export interface SiteReport {
  /** Site key; '' = no site yet (never attempted, or the domain did not resolve). */
  site: string;
  provider: string | null;
  ready: number;
  scheduled: number;
  delivering: number;
  oldestAt: string | null;
  domains: number;
  reasons: { text: string; count: number }[];
  /** Open now, summed over the live nodes' last heartbeats (at most HEARTBEAT_MS old). */
  connections: number;
  /** Per configured egress source, in config order; [] for '' (no site yet). */
  limits: SiteLimits[];
  /** The counts by the egress source of the last attempt ('' = none yet). */
  sources: { source: string; ready: number; scheduled: number; delivering: number }[];
}

export interface InForceReport {
  kind: ShapingEventRow['kind'];
  /** The adaptive rule, or `circuit`. */
  rule: string;
  /** Its last change: triggered, extended, opened, half_open. */
  state: string;
  scope: string;
  site?: string;
  source?: string;
  account?: string;
  stream?: string;
  rate: string | null;
  /** When it was triggered or last extended (circuits: opened or the trial began). */
  at: string | null;
  until: string | null;
  reply: string;
  node: string;
}

/** One egress source's warm-up on one node (heartbeat): caps are the cluster's. */
export interface WarmupReport {
  node: string;
  source: string;
  day: number;
  dailyCap: number | null;
  hourlyCap: number | null;
  sentToday: number;
  sentThisHour: number;
  capped: boolean;
  availableAt: string | null;
}

/** A route that is failing or down on one node (heartbeat). */
export interface RouteReport {
  node: string;
  route: string;
  state: string;
  /** Where its mail goes while down (null: every fallback is down too, or not down yet). */
  fallback: string | null;
  downSince: string | null;
  nextProbeAt: string | null;
  failures: Record<string, number>;
}

export interface QueueSummaryReport {
  at: string | null;
  domains: (Omit<QueueDomainSummary, 'oldestAt'> & { oldestAt: string | null })[];
  sites: SiteReport[];
  inForce: InForceReport[];
  warmup: WarmupReport[];
  routes: RouteReport[];
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const isoOf = (v: unknown): string | null => {
  const n = num(v);
  return n === null ? null : iso(n);
};

/** Warm-up and route state from the live nodes' heartbeats (any version: shape-checked). */
function routingOf(live: readonly NodeStatus[]): { warmup: WarmupReport[]; routes: RouteReport[] } {
  const warmup: WarmupReport[] = [];
  const routes: RouteReport[] = [];
  for (const node of live) {
    for (const w of Array.isArray(node.info.warmup) ? node.info.warmup : []) {
      if (typeof w?.source !== 'string') continue;
      warmup.push({
        node: node.id,
        source: w.source,
        day: num(w.day) ?? 0,
        dailyCap: num(w.dailyCap),
        hourlyCap: num(w.hourlyCap),
        sentToday: num(w.sentToday) ?? 0,
        sentThisHour: num(w.sentThisHour) ?? 0,
        capped: w.capped === true,
        availableAt: isoOf(w.availableAt),
      });
    }
    for (const r of Array.isArray(node.info.routes) ? node.info.routes : []) {
      if (typeof r?.route !== 'string' || typeof r.state !== 'string') continue;
      routes.push({
        node: node.id,
        route: r.route,
        state: r.state,
        fallback: typeof r.fallback === 'string' ? r.fallback : null,
        downSince: isoOf(r.downSince),
        nextProbeAt: isoOf(r.nextProbeAt),
        failures:
          typeof r.failures === 'object' && r.failures !== null ? (r.failures as Record<string, number>) : {},
      });
    }
  }
  return { warmup, routes };
}

function limitsOf(policy: ShapingPolicy, key: string, sources: readonly string[]): SiteLimits[] {
  const site = siteFromKey(key);
  if (!site) return [];
  return sources.map((source) => limitsFor(policy, site, source));
}

function limitsFor(policy: ShapingPolicy, site: Site, source: string): SiteLimits {
  const l = policy.limitsFor(site, source);
  const rates: string[] = [];
  if (l.rates.perSecond !== undefined) rates.push(`${l.rates.perSecond}/s`);
  if (l.rates.perMinute !== undefined) rates.push(`${l.rates.perMinute}/min`);
  if (l.rates.perHour !== undefined) rates.push(`${l.rates.perHour}/h`);
  return {
    source,
    maxConnections: l.maxConnections,
    maxMessagesPerConnection: l.maxMessagesPerConnection,
    rates,
    maxNewConnectionsPerMinute: l.maxNewConnectionsPerMinute ?? null,
    tls: l.tls ?? null,
  };
}

/** `site:<source>|<site>`, `stream:<account>/<stream>`, `account:<account>` (adaptive.ts) in parts. */
export function scopeParts(scope: string): Pick<InForceReport, 'site' | 'source' | 'account' | 'stream'> {
  if (scope.startsWith('site:')) {
    const rest = scope.slice('site:'.length);
    const bar = rest.indexOf('|');
    return bar < 0 ? { site: rest } : { source: rest.slice(0, bar), site: rest.slice(bar + 1) };
  }
  if (scope.startsWith('stream:')) {
    const rest = scope.slice('stream:'.length);
    const slash = rest.indexOf('/');
    return slash < 0 ? { account: rest } : { account: rest.slice(0, slash), stream: rest.slice(slash + 1) };
  }
  if (scope.startsWith('account:')) return { account: scope.slice('account:'.length) };
  return {};
}

/** Nodes that reported within three heartbeats (as `cluster status` counts them). */
export function liveNodes(nodes: readonly NodeStatus[], now: number): NodeStatus[] {
  return nodes.filter((n) => now - n.heartbeatAt < 3 * HEARTBEAT_MS);
}

/**
 * What the live nodes hold in force now: a node's events from before its (re)start describe
 * state it no longer has, and a node that stopped reporting holds nothing we can vouch for.
 */
export function inForceNow(
  active: readonly ShapingEventRow[],
  live: readonly NodeStatus[],
): ShapingEventRow[] {
  const startedAt = new Map(live.map((n) => [n.id, n.startedAt]));
  return active.filter((e) => {
    const since = startedAt.get(e.nodeId);
    return since !== undefined && e.at >= since;
  });
}

export async function buildQueueSummary(
  store: Store,
  config: Config,
  now: number,
): Promise<QueueSummaryReport> {
  const [domains, sites, active, nodes] = await Promise.all([
    store.queueSummary(now),
    store.queueSiteSummary(now),
    store.activeShaping(now),
    store.clusterStatus(),
  ]);
  const live = liveNodes(nodes, now);
  const connections = new Map<string, number>();
  for (const node of live) {
    // Written by nodes of any version: take only what has the expected shape.
    for (const entry of Array.isArray(node.info.sites) ? node.info.sites : []) {
      if (typeof entry?.site !== 'string' || typeof entry.open !== 'number') continue;
      connections.set(entry.site, (connections.get(entry.site) ?? 0) + entry.open);
    }
  }
  const policy = createShapingPolicy(config);
  const sources = config.egress.sources.map((source) => source.name);
  const siteReport = (site: string, counts?: (typeof sites)[number]): SiteReport => {
    const parsed = siteFromKey(site);
    return {
      site,
      provider: parsed?.provider ?? null,
      ready: counts?.ready ?? 0,
      scheduled: counts?.scheduled ?? 0,
      delivering: counts?.delivering ?? 0,
      oldestAt: counts ? iso(counts.oldestAt) : null,
      domains: counts?.domains ?? 0,
      reasons: counts?.reasons ?? [],
      connections: connections.get(site) ?? 0,
      limits: limitsOf(policy, site, sources),
      sources: counts?.sources ?? [],
    };
  };
  // Sites with waiting mail, then those with connections open but nothing waiting.
  const report = sites.map((s) => siteReport(s.site, s));
  const listed = new Set(sites.map((s) => s.site));
  const idle = [...connections]
    .filter(([site]) => !listed.has(site))
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  for (const [site] of idle) report.push(siteReport(site));
  return {
    at: iso(now),
    domains: domains.map((d) => ({ ...d, oldestAt: iso(d.oldestAt) })),
    sites: report,
    inForce: inForceNow(active, live).map((e) => ({
      kind: e.kind,
      rule: e.rule,
      state: e.type,
      scope: e.scopeKey,
      ...scopeParts(e.scopeKey),
      rate: e.rate === '' ? null : e.rate,
      at: iso(e.at),
      until: iso(e.until),
      reply: e.reply,
      node: e.nodeId,
    })),
    ...routingOf(live),
  };
}

/** The label of a site in tables. */
export function siteLabel(site: string): string {
  return site === '' ? '(no site yet)' : site;
}

/**
 * Limits in one short cell: `10 conn, 50 msg/conn, 600/min, 30 new/min, tls required`; with
 * several egress sources whose limits differ, each named: `ip-1: 10 conn, …; ip-2: 5 conn, …`.
 */
export function describeLimits(limits: readonly SiteLimits[]): string {
  if (limits.length === 0) return '-';
  const cells = limits.map(limitsCell);
  if (cells.every((cell) => cell === cells[0])) return cells[0] ?? '-';
  return limits.map((l, i) => `${l.source}: ${cells[i]}`).join('; ');
}

function limitsCell(limits: SiteLimits): string {
  return [
    `${limits.maxConnections} conn`,
    `${limits.maxMessagesPerConnection} msg/conn`,
    ...limits.rates,
    ...(limits.maxNewConnectionsPerMinute !== null ? [`${limits.maxNewConnectionsPerMinute} new/min`] : []),
    ...(limits.tls ? [`tls ${limits.tls}`] : []),
  ].join(', ');
}

/** The report as text: the domain table and its reasons, the site table and its reasons, what is in force. */
export function printQueueSummary(report: QueueSummaryReport): void {
  const out = process.stdout;
  output(
    report.domains.map((s) => ({
      domain: s.domain,
      queued: s.queued,
      deferred: s.deferred,
      delivering: s.delivering,
      '<1h': s.ages.underHour,
      '<1d': s.ages.underDay,
      older: s.ages.older,
      oldest: s.oldestAt,
    })),
    false,
  );
  for (const s of report.domains.filter((x) => x.reasons.length > 0)) {
    out.write(`\n${s.domain}: deferred because\n`);
    for (const r of s.reasons) out.write(`  ${String(r.count).padStart(6)}  ${r.text}\n`);
  }

  out.write(
    "\nBy site (of the last attempt; ready = due now, scheduled = due later; connections from the live nodes' heartbeats; limits per egress source)\n",
  );
  output(
    report.sites.map((s) => ({
      site: siteLabel(s.site),
      provider: s.provider,
      ready: s.ready,
      scheduled: s.scheduled,
      delivering: s.delivering,
      connections: s.connections,
      limits: describeLimits(s.limits),
      oldest: s.oldestAt,
    })),
    false,
  );
  for (const s of report.sites.filter((x) => x.reasons.length > 0)) {
    out.write(`\n${siteLabel(s.site)}: deferred because\n`);
    for (const r of s.reasons) out.write(`  ${String(r.count).padStart(6)}  ${r.text}\n`);
  }

  out.write('\nBy egress source (of the last attempt; (none) = not tried yet)\n');
  const bySource = new Map<string, { ready: number; scheduled: number; delivering: number; sites: number }>();
  for (const site of report.sites) {
    for (const s of site.sources) {
      const total = bySource.get(s.source) ?? { ready: 0, scheduled: 0, delivering: 0, sites: 0 };
      total.ready += s.ready;
      total.scheduled += s.scheduled;
      total.delivering += s.delivering;
      total.sites += site.site === '' ? 0 : 1;
      bySource.set(s.source, total);
    }
  }
  output(
    [...bySource].map(([source, t]) => ({ source: source || '(none)', ...t })),
    false,
  );

  out.write('\nIn force now (throttles, suspensions, open circuits; each node keeps its own)\n');
  output(
    report.inForce.map((a) => ({
      kind: a.kind,
      rule: a.rule,
      scope: a.scope,
      rate: a.rate,
      until: a.until,
      node: a.node,
      reply: a.reply,
    })),
    false,
  );

  out.write(
    "\nWarm-up (per node, as of its last heartbeat; caps are the cluster's, each node keeps to its share)\n",
  );
  output(
    report.warmup.map((w) => ({
      source: w.source,
      node: w.node,
      day: w.day,
      'daily cap': w.dailyCap,
      'hourly cap': w.hourlyCap,
      today: w.sentToday,
      'this hour': w.sentThisHour,
      capped: w.capped ? `until ${w.availableAt}` : 'no',
    })),
    false,
  );

  out.write('\nRoutes failing or down (per node, as of its last heartbeat)\n');
  output(
    report.routes.map((r) => ({
      route: r.route,
      node: r.node,
      state: r.state,
      'mail goes to': r.fallback,
      'down since': r.downSince,
      'next probe': r.nextProbeAt,
    })),
    false,
  );
}
