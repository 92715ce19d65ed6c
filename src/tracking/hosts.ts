/**
 * Which host a message's tracked URLs use, and which Host headers are tracking hosts.
 *
 * A sending domain's tracking host (`pb-track.<domain>`) is used once its CNAME check passed
 * (domains/checks/tracking.ts): links then carry the customer's own name, which is what
 * receivers' filters expect. Otherwise links use `http.public_url`. Domains are read whole and
 * kept for `cacheMs` (they change through the CLI and API, in other processes).
 */
import type { Store } from '../store/store.ts';
import type { SendingDomain } from '../store/types.ts';

/** Whether the domain's last DNS check found its tracking CNAME in place. */
export function trackingCheckPassed(domain: SendingDomain): boolean {
  if (!Array.isArray(domain.lastCheck)) return false;
  return (domain.lastCheck as { record?: unknown; status?: unknown }[]).some(
    (r) => r?.record === 'tracking' && r?.status === 'ok',
  );
}

export function createTrackingHosts(options: {
  store: Store;
  clock: () => number;
  /** `https` for verified tracking hosts (a TLS proxy in front of the HTTP listener), else `http`. */
  scheme: 'https' | 'http';
  cacheMs?: number;
}) {
  const { store, clock } = options;
  const cacheMs = options.cacheMs ?? 5_000;
  let byName = new Map<string, SendingDomain>();
  let hosts = new Set<string>();
  let loadedAt = Number.NEGATIVE_INFINITY;
  let loading: Promise<void> | undefined;

  async function refresh(): Promise<void> {
    if (clock() - loadedAt < cacheMs) return;
    loading ??= store
      .listDomains()
      .then((list) => {
        byName = new Map(list.map((d) => [d.domain, d]));
        hosts = new Set(list.filter(trackingCheckPassed).map((d) => d.trackingHost.toLowerCase()));
        loadedAt = clock();
      })
      .finally(() => {
        loading = undefined;
      });
    await loading;
  }

  /**
   * `<scheme>://<tracking host>` of the account's sending domain `fromDomain` belongs to (or its
   * nearest registered parent), when its tracking check passed; else undefined.
   */
  async function baseFor(accountId: string, fromDomain: string | undefined): Promise<string | undefined> {
    if (!fromDomain) return undefined;
    await refresh();
    for (let d = fromDomain.toLowerCase(); d.includes('.'); d = d.slice(d.indexOf('.') + 1)) {
      const found = byName.get(d);
      if (!found) continue;
      return found.accountId === accountId && trackingCheckPassed(found)
        ? `${options.scheme}://${found.trackingHost}`
        : undefined;
    }
    return undefined;
  }

  /**
   * The return-path domain of the account's verified sending domain `fromDomain` belongs to (or
   * its nearest registered parent): where its `mailto:` unsubscribe addresses live (mailto.ts),
   * the domain whose MX is our inbound MX. Undefined for other senders.
   */
  async function returnPathFor(
    accountId: string,
    fromDomain: string | undefined,
  ): Promise<string | undefined> {
    if (!fromDomain) return undefined;
    await refresh();
    for (let d = fromDomain.toLowerCase(); d.includes('.'); d = d.slice(d.indexOf('.') + 1)) {
      const found = byName.get(d);
      if (!found) continue;
      return found.accountId === accountId && found.verifiedAt !== null ? found.returnPath : undefined;
    }
    return undefined;
  }

  /**
   * Whether `host` (a Host header, port removed) is a verified tracking host. Answers from what
   * was last loaded and refreshes in the background, so the HTTP hook never waits on the store.
   */
  function isTrackingHost(host: string): boolean {
    void refresh().catch(() => undefined);
    return hosts.has(host.toLowerCase());
  }

  return { baseFor, returnPathFor, isTrackingHost, refresh };
}

export type TrackingHosts = ReturnType<typeof createTrackingHosts>;
