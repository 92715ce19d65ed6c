/**
 * Route health and failover: which route carries the mail that matched a route, given what
 * deliveries through each route have reported.
 *
 *   const failover = createFailover(routes, (event) => log.warn(event));
 *   failover.recordFailure('relay', 'connection', now)  // no session: refused, timeout, greeting/EHLO/STARTTLS failed
 *   failover.recordFailure('relay', '421', now)         // the smarthost answered 421 (closing, busy)
 *   failover.recordSuccess('relay', now)                // a transaction went through (or was answered 2xx/5xx)
 *   failover.select('relay', now)   → { route: 'backup', probe: false, primary: 'relay', skipped: ['relay'] }
 *   failover.status(now)            → health of every route with fallbacks or used as one
 *
 * Down: a route is down once it has had only failures for its `failoverAfter` (its first
 * failure since the last success at least that long ago). Mail that matched it then goes to its
 * first fallback that is not down, recursively (a fallback that is down passes on to its own
 * fallbacks). When every candidate is down, the primary carries the mail: its failures defer
 * the mail, which is what happens without failover too.
 *
 * Recovery (the choice): like a circuit breaker's half-open state, but on live traffic. While a
 * route is down, select() hands one delivery every `probeEvery` to the route itself, marked
 * `probe: true`; all other mail goes to the fallback. The probe's success (any success reported
 * for the route) brings the route back at once: `recovered`, and the next select() returns it.
 * Its failure keeps the route down until the next probe. So a recovered primary takes its
 * traffic back within `probeEvery`, and a still-dead one costs one deferred delivery per
 * `probeEvery`, which the caller may avoid by routing a failed probe again at once (select()
 * then returns the fallback; the probe slot is taken until `probeEvery` has passed). A down
 * fallback's probes ride on the mail that reaches it (the mail of the routes it backs up),
 * since that is its only traffic.
 * Why not separate health checks (connect + EHLO + QUIT): they need their own connections and
 * timers outside the delivery path, and a smarthost that greets but answers 421 to MAIL would
 * pass them; a real delivery tests what matters.
 *
 * What counts: the caller reports per transaction through the route. A 4xx other than 421 or a
 * 5xx is the remote's answer about that mail, not about the route, and counts as a success.
 * State is in memory and per node: each node detects a down route by its own deliveries.
 * Unknown route names are ignored (health is kept only for routes in the failover graph).
 */

export type FailureKind = 'connection' | '421';

export interface FailoverRoute {
  readonly name: string;
  readonly fallback: readonly string[];
  /** ms of failures only before the route is down. */
  readonly failoverAfter: number;
  /** ms between probes while down. */
  readonly probeEvery: number;
}

export interface Selection {
  /** The route to deliver through. */
  readonly route: string;
  /** The route the mail matched. */
  readonly primary: string;
  /** True when this delivery is the down route's trial: report its outcome. */
  readonly probe: boolean;
  /** Routes passed over because they are down, in order (empty when `route` is `primary`). */
  readonly skipped: readonly string[];
}

export type FailoverEvent =
  | {
      readonly type: 'down';
      readonly route: string;
      /** Where its mail goes now; absent when every fallback is down too. */
      readonly fallback?: string;
      readonly failures: Readonly<Record<FailureKind, number>>;
      readonly firstFailureAt: number;
      readonly at: number;
    }
  | { readonly type: 'recovered'; readonly route: string; readonly downSince: number; readonly at: number };

export interface RouteHealth {
  readonly route: string;
  /** `failing`: failures since the last success, not yet for `failoverAfter`. */
  readonly state: 'up' | 'failing' | 'down';
  readonly failures: Readonly<Record<FailureKind, number>>;
  readonly firstFailureAt?: number;
  readonly downSince?: number;
  /** Down: when the next probe may go. */
  readonly nextProbeAt?: number;
  /** Down: where its mail goes now (absent: every fallback is down too). */
  readonly fallback?: string;
}

export interface Failover {
  recordFailure(route: string, kind: FailureKind, now: number): void;
  recordSuccess(route: string, now: number): void;
  /** The route for mail that matched `route`; takes the probe slot when it returns a probe. */
  select(route: string, now: number): Selection;
  isDown(route: string, now: number): boolean;
  status(now: number): RouteHealth[];
}

interface Health {
  readonly route: FailoverRoute;
  failures: Record<FailureKind, number>;
  firstFailureAt?: number;
  downSince?: number;
  lastProbeAt?: number;
}

/** The first fallback cycle found (`[a, b, a]`), or undefined. Unknown names are ignored. */
export function fallbackCycle(
  routes: readonly Pick<FailoverRoute, 'name' | 'fallback'>[],
): string[] | undefined {
  const graph = new Map(routes.map((route) => [route.name, route.fallback]));
  const done = new Set<string>();
  // Iterative depth-first search: a config of thousands of chained routes must not blow the stack.
  for (const start of graph.keys()) {
    if (done.has(start)) continue;
    const path: string[] = [];
    const onPath = new Set<string>();
    const stack: { name: string; next: number }[] = [{ name: start, next: 0 }];
    path.push(start);
    onPath.add(start);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const targets = graph.get(top.name) ?? [];
      if (top.next >= targets.length) {
        stack.pop();
        path.pop();
        onPath.delete(top.name);
        done.add(top.name);
        continue;
      }
      const target = targets[top.next++]!;
      if (!graph.has(target) || done.has(target)) continue;
      if (onPath.has(target)) return [...path.slice(path.indexOf(target)), target];
      stack.push({ name: target, next: 0 });
      path.push(target);
      onPath.add(target);
    }
  }
  return undefined;
}

export function createFailover(
  routes: readonly FailoverRoute[],
  onEvent?: (event: FailoverEvent) => void,
): Failover {
  const cycle = fallbackCycle(routes);
  if (cycle) throw new RangeError(`route fallbacks form a cycle: ${cycle.join(' → ')}`);
  const byName = new Map(routes.map((route) => [route.name, route]));
  for (const route of routes) {
    for (const target of route.fallback) {
      if (!byName.has(target)) throw new RangeError(`route ${route.name}: no fallback route named ${target}`);
    }
  }
  // Only routes in the failover graph are watched: a route without fallbacks that is nobody's
  // fallback has nowhere to send its mail, so its health would change nothing.
  const watched = new Set<string>();
  for (const route of routes) {
    if (route.fallback.length > 0) {
      watched.add(route.name);
      for (const target of route.fallback) watched.add(target);
    }
  }
  const health = new Map<string, Health>();
  for (const name of watched) {
    health.set(name, { route: byName.get(name)!, failures: { connection: 0, '421': 0 } });
  }

  /** Turns failing into down once failoverAfter has passed; returns whether it is down. */
  function down(h: Health, now: number): boolean {
    if (h.downSince !== undefined) return true;
    if (h.firstFailureAt === undefined || now - h.firstFailureAt < h.route.failoverAfter) return false;
    h.downSince = now;
    onEvent?.({
      type: 'down',
      route: h.route.name,
      ...optional('fallback', usableFallback(h.route, now, new Set([h.route.name]))),
      failures: { ...h.failures },
      firstFailureAt: h.firstFailureAt,
      at: now,
    });
    return true;
  }

  /**
   * The first route reachable from `route`'s fallbacks that is not down (a down one passes on
   * to its own fallbacks). Takes no probe slot.
   */
  function usableFallback(route: FailoverRoute, now: number, seen: Set<string>): string | undefined {
    for (const name of route.fallback) {
      if (seen.has(name)) continue;
      seen.add(name);
      const h = health.get(name)!;
      if (!down(h, now)) return name;
      const deeper = usableFallback(h.route, now, seen);
      if (deeper !== undefined) return deeper;
    }
    return undefined;
  }

  function probeDue(h: Health, now: number): boolean {
    return now >= (h.lastProbeAt ?? h.downSince ?? now) + h.route.probeEvery;
  }

  /** Picks for mail that reached `h`'s route: itself, its probe, or a fallback's pick. */
  function pick(
    h: Health,
    now: number,
    seen: Set<string>,
    skipped: string[],
  ): { route: string; probe: boolean } | undefined {
    if (!down(h, now)) return { route: h.route.name, probe: false };
    if (probeDue(h, now)) {
      h.lastProbeAt = now;
      return { route: h.route.name, probe: true };
    }
    skipped.push(h.route.name);
    for (const name of h.route.fallback) {
      if (seen.has(name)) continue;
      seen.add(name);
      const found = pick(health.get(name)!, now, seen, skipped);
      if (found) return found;
    }
    return undefined;
  }

  return {
    recordFailure(route, kind, now) {
      const h = health.get(route);
      if (!h) return;
      h.failures[kind]++;
      h.firstFailureAt ??= now;
      down(h, now);
    },

    recordSuccess(route, now) {
      const h = health.get(route);
      if (!h) return;
      const downSince = h.downSince;
      h.failures = { connection: 0, '421': 0 };
      h.firstFailureAt = undefined;
      h.downSince = undefined;
      h.lastProbeAt = undefined;
      if (downSince !== undefined) onEvent?.({ type: 'recovered', route, downSince, at: now });
    },

    select(route, now) {
      const h = health.get(route);
      if (!h) return { route, primary: route, probe: false, skipped: [] };
      const skipped: string[] = [];
      const found = pick(h, now, new Set([route]), skipped);
      if (found) return { ...found, primary: route, skipped: found.route === route ? [] : skipped };
      return { route, primary: route, probe: false, skipped: [] };
    },

    isDown(route, now) {
      const h = health.get(route);
      return h ? down(h, now) : false;
    },

    status(now) {
      const list: RouteHealth[] = [];
      for (const [name, h] of health) {
        const isDown = down(h, now);
        list.push({
          route: name,
          state: isDown ? 'down' : h.firstFailureAt !== undefined ? 'failing' : 'up',
          failures: { ...h.failures },
          ...optional('firstFailureAt', h.firstFailureAt),
          ...optional('downSince', h.downSince),
          ...optional(
            'nextProbeAt',
            isDown ? (h.lastProbeAt ?? h.downSince!) + h.route.probeEvery : undefined,
          ),
          ...optional('fallback', isDown ? usableFallback(h.route, now, new Set([name])) : undefined),
        });
      }
      return list;
    },
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
