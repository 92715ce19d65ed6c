/**
 * How often a node records that it is alive (`postbote cluster status` calls a node down after 3
 * missed). In a module of its own so that the CLI reads it without loading the delivery engine.
 */
export const HEARTBEAT_MS = 10_000;
