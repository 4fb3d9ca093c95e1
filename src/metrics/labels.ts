/**
 * The label values a metrics tracker emits: bounded sets only, never a peer
 * address, port or fd.
 *
 * @packageDocumentation
 */
import { codedError, invalidArgType, invalidArgValue, outOfRange } from '../errors';
import type { ConnectionStatus } from '../probe/state';

/** Which end of the connections a tracked target holds. */
export type TrackRole = 'server' | 'client';

/** The statuses a tracked connection is counted under (every {@link ConnectionStatus} but `listening`). */
export const TRACKED_STATUSES = [
  'connecting',
  'open',
  'peerClosed',
  'localClosed',
  'closing',
  'reset',
  'errored',
  'closed',
  'unknown',
] as const satisfies readonly ConnectionStatus[];

/** One of {@link TRACKED_STATUSES}. */
export type TrackedStatus = (typeof TRACKED_STATUSES)[number];

/** The default cap on distinct scopes per tracker. */
export const DEFAULT_MAX_SCOPES = 32;

/** The scope of targets tracked without one. */
export const DEFAULT_SCOPE = 'default';

const SCOPE_PATTERN = /^[A-Za-z0-9_.:/-]{1,64}$/;

/** Checks `options.scope` (a short name of a listener, pool or upstream). */
export function checkScope(value: unknown, name: string): string {
  if (value === undefined) return DEFAULT_SCOPE;
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  if (!SCOPE_PATTERN.test(value)) {
    throw invalidArgValue(name, 'must be 1 to 64 characters of A-Z a-z 0-9 _ . : / -');
  }
  return value;
}

/** Checks `options.role`; `fallback` when absent. */
export function checkRole(value: unknown, name: string, fallback: TrackRole): TrackRole {
  if (value === undefined) return fallback;
  if (value !== 'server' && value !== 'client') {
    if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
    throw invalidArgValue(name, "must be 'server' or 'client'");
  }
  return value;
}

/** Checks a positive integer option such as `maxScopes`. */
export function checkCount(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < 1 || value > max) throw outOfRange(name, `an integer >= 1 and <= ${max}`, value);
  return value;
}

/** Checks a non-negative duration in ms such as `maxSilentMs`. */
export function checkMs(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isFinite(value) || value < 0) throw outOfRange(name, 'a finite number >= 0', value);
  return value;
}

/** Distinct scopes seen by one tracker, refused past the cap. */
export class ScopeSet {
  private readonly scopes = new Set<string>();

  /** @param max - The cap. */
  constructor(private readonly max: number) {}

  /** Admits `scope` or throws `ERR_SOCKSTATE_TOO_MANY_SCOPES`. */
  admit(scope: string): void {
    if (this.scopes.has(scope)) return;
    if (this.scopes.size >= this.max) {
      throw codedError(
        'ERR_SOCKSTATE_TOO_MANY_SCOPES',
        `track(): scope '${scope}' would be the tracker's ${this.max + 1}th; maxScopes is ${this.max} (scopes are label values: keep them few)`,
      );
    }
    this.scopes.add(scope);
  }
}

/** Reads an own property of a caller's options object, never the prototype chain. */
export function own(options: object | undefined, key: string): unknown {
  return options !== undefined && Object.hasOwn(options, key) ? (options as Record<string, unknown>)[key] : undefined;
}

/** Checks an optional options argument: undefined or a plain object. */
export function checkOptions(value: unknown, name: string): object | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) throw invalidArgType(name, 'of type object', value);
  return value;
}
