/**
 * Everything static about shaping, built once from the config and the shipped data: what the
 * delivery engine needs to create its shapers.
 *
 *   const policy = createShapingPolicy(config);
 *   const site = policy.siteOf(mxHostNames);                  // site.ts rules, with the merged providers
 *   const limits = policy.limitsFor(site, source);            // limits.ts layers
 *   const adaptive = createAdaptiveShaper({ rules: policy.rules, onEvent });
 *   const circuit = createCircuitBreaker(policy.circuit, random, onCircuitEvent);
 *   const limiter = createRateLimiter();
 */

import type { CircuitOptions } from './circuit.ts';
import type { ShapingConfig } from './config.ts';
import { createLimitsResolver, defaultsFromDelivery, type ShapingLimits } from './limits.ts';
import { type ProviderData, shippedProviderData } from './provider-data.ts';
import { mergeRules, type RuleSpec } from './rule-spec.ts';
import { type Provider, type Site, siteOf, smarthostSite } from './site.ts';
import { mergeProviders } from './spec.ts';

export interface ShapingPolicy {
  /** Shipped providers merged with shaping.providers. */
  readonly providers: readonly Provider[];
  /** Shipped rules merged with shaping.rules (replaced, disabled, added). */
  readonly rules: readonly RuleSpec[];
  readonly circuit: CircuitOptions;
  siteOf(mxHostNames: readonly string[]): Site;
  smarthostSite(host: string, port: number): Site;
  limitsFor(site: Site, source?: string): ShapingLimits;
}

export interface ShapingPolicyInput {
  readonly delivery: {
    readonly max_connections_per_host: number;
    readonly max_messages_per_connection: number;
  };
  readonly shaping: ShapingConfig;
}

export function createShapingPolicy(
  config: ShapingPolicyInput,
  data: ProviderData = shippedProviderData(),
): ShapingPolicy {
  const merged = mergeProviders(data.providers, config.shaping.providers);
  const providers: Provider[] = merged.map(({ name, mx }) => ({ name, mx }));
  const resolver = createLimitsResolver({
    defaults: defaultsFromDelivery(config.delivery),
    providers: merged,
    sites: config.shaping.sites,
  });
  const { failures, backoff, jitter } = config.shaping.circuit;
  return {
    providers,
    rules: mergeRules(data.rules, config.shaping.rules),
    circuit: { failures, backoffMs: backoff, jitter },
    siteOf: (mxHostNames) => siteOf(mxHostNames, providers),
    smarthostSite,
    limitsFor: (site, source) => resolver.limitsFor(site, source),
  };
}
