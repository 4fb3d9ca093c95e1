/**
 * What both exporters share: the tracker they return, the checks of their
 * common options, and the delta bookkeeping of cumulative counters.
 *
 * @packageDocumentation
 */
import type * as net from 'node:net';
import { invalidArgType, invalidArgValue } from '../errors';
import { TcpTracker, type TrackerOptions, type TrackHandle, type TrackOptions } from './tracker';

/**
 * What `collectTcpMetrics` (sockstate/prometheus) and `observeTcpMetrics`
 * (sockstate/otel) return.
 */
export interface TcpMetricsTracker {
  /**
   * Tracks a `net.Server` (every connection it accepts from now on), a
   * `net.Socket` / `tls.TLSSocket`, or a sockstate guard (HTTP agent,
   * undici agent, pool guard: the connections it announces and the reuse
   * checks it makes).
   *
   * @param target - What to track.
   * @param options - `scope` (label value, default `'default'`) and `role`
   *   (`'server'` for a net.Server by default, else `'client'`).
   * @returns A handle whose `stop()` stops tracking this target.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a
   *   bad target or option; SockstateError `ERR_SOCKSTATE_TOO_MANY_SCOPES`
   *   past `maxScopes`, `ERR_SOCKSTATE_TRACKER_STOPPED` after stop().
   */
  track(target: net.Server | net.Socket | object, options?: TrackOptions): TrackHandle;
  /** Stops tracking everything and unregisters every metric. Idempotent. */
  stop(): void;
  /** Connections tracked now. */
  readonly size: number;
  /** Kernel sweeps made so far (one per scrape or collection). */
  readonly sweeps: number;
  /** Rows dropped because a connection's fd was closed (maybe reused) while a sweep ran. */
  readonly dropped: number;
}

/** Wraps a tracker and the exporter's own stop() as the public object. */
export function publicTracker(tracker: TcpTracker, unregister: () => void): TcpMetricsTracker {
  let stopped = false;
  return {
    track: (target, options) => tracker.track(target, options),
    stop: () => {
      if (stopped) return;
      stopped = true;
      tracker.stop();
      unregister();
    },
    get size() {
      return tracker.size;
    },
    get sweeps() {
      return tracker.sweeps;
    },
    get dropped() {
      return tracker.dropped;
    },
  };
}

/** The tracker options found in an exporter's options. */
export function trackerOptions(options: object | undefined): TrackerOptions {
  const out: TrackerOptions = {};
  if (options === undefined) return out;
  if (Object.hasOwn(options, 'maxScopes')) out.maxScopes = (options as TrackerOptions).maxScopes;
  if (Object.hasOwn(options, 'maxSilentMs')) out.maxSilentMs = (options as TrackerOptions).maxSilentMs;
  return out;
}

/** Checks static labels: an object of string values whose names the metrics do not use. */
export function checkStaticLabels(value: unknown, name: string, reserved: readonly string[]): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null) throw invalidArgType(name, 'of type object', value);
  const labels: Record<string, string> = {};
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v !== 'string') throw invalidArgType(`${name}.${key}`, 'of type string', v);
    if (reserved.includes(key)) throw invalidArgValue(name, `must not set '${key}', which the metrics set themselves`);
    labels[key] = v;
  }
  return labels;
}

/**
 * Turns running totals into increments: remembers, per group and
 * counter, what was already reported.
 */
export class Reported {
  private values = new Float64Array(0);

  /** @param width - Counters per group. */
  constructor(private readonly width: number) {}

  /** The increment of counter `k` of group `g` since the last call, given its total now. */
  delta(g: number, k: number, total: number): number {
    const i = g * this.width + k;
    if (i >= this.values.length) {
      const grown = new Float64Array(Math.max(this.values.length * 2, (g + 1) * this.width, 16));
      grown.set(this.values);
      this.values = grown;
    }
    const d = total - this.values[i]!;
    this.values[i] = total;
    return d;
  }
}
