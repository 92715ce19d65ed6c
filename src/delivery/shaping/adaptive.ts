/**
 * Adaptive shaping: remote replies that match a rule trigger an action for a while.
 *
 *   const adaptive = createAdaptiveShaper({ rules, onEvent: (e) => writeEvent(e) });
 *   adaptive.observe(reply, { source, site, provider, account, stream }, now)
 *     → the actions triggered (or extended) by this reply, each with its scope and expiry
 *   adaptive.throttleFor(source, site, now)      → Throttle | undefined (for the rate limiter)
 *   adaptive.suspendedUntil(context, now)        → epoch ms until which nothing may be sent, or undefined
 *   adaptive.active(now)                         → every action in force (for `postbote queue summary`)
 *   adaptive.expire(now) / adaptive.nextExpiry()  → end actions on time (call at nextExpiry())
 *   adaptive.lift(scopeKey, now)                 → an operator ends actions early
 *
 * Actions and their scopes:
 *
 *   throttle        (source, site)     messages paced at the rule's rate (rate-limiter.ts)
 *   suspend_site    (source, site)     nothing sent from that source to that site
 *   suspend_stream  (account, stream)  nothing sent for that stream of that account
 *   suspend_account (account)          nothing sent for the account
 *
 * A reply matches a rule when every matcher the rule gives matches (code and enhanced code as a
 * whole, text searched case-insensitively) and, for a rule naming providers, the site belongs to
 * one of them. Every matching rule applies (a Yahoo reply can trigger both the generic 421 rule
 * and the Yahoo one); where several throttles hold, the slowest wins. With a threshold (`3/h`),
 * the action triggers at the 3rd match for the same scope within an hour, and the count starts
 * again. A match while the action is in force extends it to now + duration (the provider is
 * still complaining). Account and stream actions need the context's account (and stream); a
 * reply without them (our own DSNs) cannot trigger them.
 *
 * Every change is reported to `onEvent` (triggered, extended, expired, lifted) after the state
 * is updated, so the caller can write events; expiry is reported by the first call at or after
 * the expiry time (expire() at nextExpiry() makes that punctual). State is in memory, per node.
 */

import { formatRate, perMs, type Rate } from './rate.ts';
import type { Throttle } from './rate-limiter.ts';
import { compileMatcher, type RuleActionKind, type RuleSpec } from './rule-spec.ts';

/** What the remote side said (delivery/smtp-reply.ts SmtpReply has this shape). */
export interface ObservedReply {
  readonly code: number;
  readonly enhanced?: string;
  readonly text: string;
}

export interface ShapingContext {
  readonly source: string;
  /** Site key (site.ts). */
  readonly site: string;
  readonly provider?: string;
  readonly account?: string;
  readonly stream?: string;
}

export type ActionScope =
  | { readonly source: string; readonly site: string }
  | { readonly account: string; readonly stream: string }
  | { readonly account: string };

export interface ShapingAction {
  readonly rule: string;
  readonly kind: RuleActionKind;
  readonly scope: ActionScope;
  /** `site:<source>|<site>`, `stream:<account>/<stream>` or `account:<account>`. */
  readonly scopeKey: string;
  /** Throttles only. */
  readonly rate?: Rate;
  readonly since: number;
  readonly until: number;
  /** The reply that triggered (or last extended) it, one line: `421 4.7.0 Try again later`. */
  readonly reply: string;
}

export interface ShapingActionEvent {
  readonly type: 'triggered' | 'extended' | 'expired' | 'lifted';
  readonly action: ShapingAction;
  readonly at: number;
}

export interface AdaptiveShaperOptions {
  readonly rules: readonly RuleSpec[];
  /** Called after each change; must not throw. */
  readonly onEvent?: (event: ShapingActionEvent) => void;
}

export interface AdaptiveShaper {
  observe(reply: ObservedReply, context: ShapingContext, now: number): ShapingAction[];
  throttleFor(source: string, site: string, now: number): Throttle | undefined;
  suspendedUntil(context: Partial<ShapingContext>, now: number): number | undefined;
  active(now: number): ShapingAction[];
  expire(now: number): ShapingAction[];
  nextExpiry(): number | undefined;
  lift(scopeKey: string, now: number): ShapingAction[];
}

/** Only this much of a reply's text is searched: a hostile peer must not feed a regex megabytes. */
export const MAX_TEXT_SEARCHED = 1000;

interface CompiledRule {
  readonly spec: RuleSpec;
  readonly code?: RegExp;
  readonly enhanced?: RegExp;
  readonly text?: RegExp;
}

export function siteScopeKey(source: string, site: string): string {
  return `site:${source}|${site}`;
}
export function streamScopeKey(account: string, stream: string): string {
  return `stream:${account}/${stream}`;
}
export function accountScopeKey(account: string): string {
  return `account:${account}`;
}

export function createAdaptiveShaper(options: AdaptiveShaperOptions): AdaptiveShaper {
  const rules: CompiledRule[] = options.rules.map((spec) => ({
    spec,
    ...(spec.match.code !== undefined ? { code: compileMatcher('code', spec.match.code) } : {}),
    ...(spec.match.enhanced !== undefined
      ? { enhanced: compileMatcher('enhanced', spec.match.enhanced) }
      : {}),
    ...(spec.match.text !== undefined ? { text: compileMatcher('text', spec.match.text) } : {}),
  }));
  /** rule name + scope key → the action in force. */
  const actions = new Map<string, ShapingAction>();
  /** rule name + scope key → times of recent matches (threshold rules only, at most `count`). */
  const matches = new Map<string, number[]>();
  const emit = (type: ShapingActionEvent['type'], action: ShapingAction, at: number) =>
    options.onEvent?.({ type, action, at });

  function matchesRule(rule: CompiledRule, reply: ObservedReply, text: string, provider?: string): boolean {
    const { providers } = rule.spec;
    if (providers !== undefined && (provider === undefined || !providers.includes(provider))) return false;
    if (rule.code && !rule.code.test(String(reply.code))) return false;
    if (rule.enhanced && (reply.enhanced === undefined || !rule.enhanced.test(reply.enhanced))) return false;
    if (rule.text && !rule.text.test(text)) return false;
    return true;
  }

  function scopeOf(
    kind: RuleActionKind,
    context: ShapingContext,
  ): { scope: ActionScope; key: string } | undefined {
    switch (kind) {
      case 'throttle':
      case 'suspend_site':
        return {
          scope: { source: context.source, site: context.site },
          key: siteScopeKey(context.source, context.site),
        };
      case 'suspend_stream':
        if (context.account === undefined || context.stream === undefined) return undefined;
        return {
          scope: { account: context.account, stream: context.stream },
          key: streamScopeKey(context.account, context.stream),
        };
      case 'suspend_account':
        if (context.account === undefined) return undefined;
        return { scope: { account: context.account }, key: accountScopeKey(context.account) };
    }
  }

  /** True when this match reaches the rule's threshold (always, without one). */
  function thresholdReached(spec: RuleSpec, id: string, now: number): boolean {
    if (spec.threshold === undefined || spec.threshold.count <= 1) return true;
    const since = now - spec.threshold.perMs;
    const recent = (matches.get(id) ?? []).filter((t) => t > since);
    recent.push(now);
    if (recent.length >= spec.threshold.count) {
      matches.delete(id);
      return true;
    }
    matches.set(id, recent);
    return false;
  }

  function expireActions(now: number): ShapingAction[] {
    const ended: ShapingAction[] = [];
    for (const [id, action] of actions) {
      if (action.until <= now) {
        actions.delete(id);
        ended.push(action);
      }
    }
    for (const action of ended) emit('expired', action, now);
    return ended;
  }

  function inForce(now: number): ShapingAction[] {
    expireActions(now);
    return [...actions.values()];
  }

  return {
    observe(reply, context, now) {
      expireActions(now);
      const text =
        reply.text.length > MAX_TEXT_SEARCHED ? reply.text.slice(0, MAX_TEXT_SEARCHED) : reply.text;
      const line = [reply.code || '', reply.enhanced ?? '', text].filter((part) => part !== '').join(' ');
      const changed: { type: 'triggered' | 'extended'; action: ShapingAction }[] = [];
      for (const rule of rules) {
        if (!matchesRule(rule, reply, text, context.provider)) continue;
        const { spec } = rule;
        const target = scopeOf(spec.action, context);
        if (target === undefined) continue;
        const id = `${spec.name}\0${target.key}`;
        if (!thresholdReached(spec, id, now)) continue;
        const current = actions.get(id);
        const until = now + spec.durationMs;
        if (current !== undefined) {
          const extended = { ...current, until: Math.max(current.until, until), reply: line };
          actions.set(id, extended);
          changed.push({ type: 'extended', action: extended });
          continue;
        }
        const action: ShapingAction = {
          rule: spec.name,
          kind: spec.action,
          scope: target.scope,
          scopeKey: target.key,
          ...(spec.rate ? { rate: spec.rate } : {}),
          since: now,
          until,
          reply: line,
        };
        actions.set(id, action);
        changed.push({ type: 'triggered', action });
      }
      for (const { type, action } of changed) emit(type, action, now);
      return changed.map(({ action }) => action);
    },

    throttleFor(source, site, now) {
      const key = siteScopeKey(source, site);
      let slowest: ShapingAction | undefined;
      for (const action of inForce(now)) {
        if (action.kind !== 'throttle' || action.scopeKey !== key || action.rate === undefined) continue;
        if (slowest?.rate === undefined || perMs(action.rate) < perMs(slowest.rate)) slowest = action;
      }
      if (slowest?.rate === undefined) return undefined;
      return { rate: slowest.rate, since: slowest.since, until: slowest.until };
    },

    suspendedUntil(context, now) {
      const keys = new Set<string>();
      if (context.source !== undefined && context.site !== undefined) {
        keys.add(siteScopeKey(context.source, context.site));
      }
      if (context.account !== undefined) {
        keys.add(accountScopeKey(context.account));
        if (context.stream !== undefined) keys.add(streamScopeKey(context.account, context.stream));
      }
      let until: number | undefined;
      for (const action of inForce(now)) {
        if (action.kind === 'throttle' || !keys.has(action.scopeKey)) continue;
        until = Math.max(until ?? 0, action.until);
      }
      return until;
    },

    active: (now) => inForce(now).sort((a, b) => a.until - b.until || a.scopeKey.localeCompare(b.scopeKey)),

    expire(now) {
      const ended = expireActions(now);
      // Threshold counts that can no longer reach their threshold are forgotten with them.
      const longest = Math.max(0, ...options.rules.map((rule) => rule.threshold?.perMs ?? 0));
      for (const [id, times] of matches) {
        if ((times.at(-1) ?? 0) <= now - longest) matches.delete(id);
      }
      return ended;
    },

    nextExpiry() {
      let next: number | undefined;
      for (const action of actions.values()) next = Math.min(next ?? action.until, action.until);
      return next;
    },

    lift(scopeKey, now) {
      const lifted: ShapingAction[] = [];
      for (const [id, action] of actions) {
        if (action.scopeKey === scopeKey) {
          actions.delete(id);
          lifted.push(action);
        }
      }
      for (const action of lifted) emit('lifted', action, now);
      return lifted;
    },
  };
}

/** One line for logs and `queue summary`: `throttle 1/min site:ip1|provider:google until … (gmail-unusual-rate)`. */
export function describeAction(action: ShapingAction): string {
  const what =
    action.kind === 'throttle' && action.rate ? `throttle ${formatRate(action.rate)}` : action.kind;
  return `${what} ${action.scopeKey} until ${new Date(action.until).toISOString()} (${action.rule})`;
}
