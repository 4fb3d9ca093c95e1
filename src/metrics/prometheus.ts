/**
 * `sockstate/prometheus`: TCP metrics of a server's or a pool's connections
 * for prom-client, computed from one off-thread kernel sweep per scrape.
 *
 * @packageDocumentation
 */
import { checkStaticLabels, publicTracker, Reported, type TcpMetricsTracker, trackerOptions } from './exporter';
import { RTT_BUCKETS_SECONDS } from './buckets';
import { checkOptions, own, TRACKED_STATUSES } from './labels';
import { type MetricGroup, TcpTracker, type TrackerOptions } from './tracker';
import { invalidArgType, invalidArgValue } from '../errors';
import { requirePeer } from '../integrations/peer';

export type { TcpMetricsTracker } from './exporter';
export type { MetricGroup, TrackerOptions, TrackHandle, TrackOptions } from './tracker';
export { RTT_BUCKETS_SECONDS } from './buckets';
export { TRACKED_STATUSES } from './labels';
export type { TrackedStatus, TrackRole } from './labels';

/** The part of a prom-client `Registry` this module uses. */
export interface PromRegistry {
  /** Adds a metric (prom-client's `registerMetric`). */
  registerMetric(metric: unknown): void;
  /** Removes a metric by name. */
  removeSingleMetric(name: string): void;
  /** The metric of that name, if any. */
  getSingleMetric(name: string): unknown;
}

/** Options of {@link collectTcpMetrics}, after prom-client's `collectDefaultMetrics`. */
export interface CollectTcpMetricsOptions extends TrackerOptions {
  /** The registry to register in; prom-client's global `register` when absent. */
  register?: PromRegistry;
  /** Prepended to every metric name, e.g. `'myapp_'`. */
  prefix?: string;
  /** Static labels added to every sample. */
  labels?: Record<string, string>;
}

type PromClient = typeof import('prom-client');

const RESERVED = ['role', 'scope', 'status', 'result', 'le'] as const;
const METRIC_NAMES = [
  'sockstate_connections',
  'sockstate_tcp_rtt_seconds',
  'sockstate_tcp_retransmitted_segments_total',
  'sockstate_tcp_segments_sent_total',
  'sockstate_tcp_bytes_sent_total',
  'sockstate_tcp_bytes_received_total',
  'sockstate_tcp_retrans_segments',
  'sockstate_tcp_lost_segments',
  'sockstate_tcp_silent_connections',
  'sockstate_connections_closed_total',
  'sockstate_reuse_checks_total',
] as const;
const NAME_PATTERN = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

// The histogram is filled by bulk counts from the sweep, which prom-client's
// Histogram (one observe() per value, a label hash each) cannot take
// cheaply at 15,000 connections: this object is a histogram for the
// registry (name, help, type, get(), reset()) fed from the aggregates.
class RttHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly help = 'Smoothed round-trip time (tcpi_rtt) of tracked connections: one observation per open connection per scrape, and one at close for a connection no scrape saw';
  readonly labelNames: string[];

  constructor(
    readonly name: string,
    private readonly tracker: TcpTracker,
    private readonly staticLabels: Record<string, string>,
  ) {
    this.labelNames = ['role', 'scope', ...Object.keys(staticLabels)];
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: unknown[] }> {
    await this.tracker.collect();
    const values: unknown[] = [];
    for (const g of this.tracker.groups) {
      const labels = { ...this.staticLabels, role: g.role, scope: g.scope };
      let cumulative = 0;
      for (let b = 0; b <= RTT_BUCKETS_SECONDS.length; b++) {
        cumulative += g.rttBuckets[b]!;
        const le = b < RTT_BUCKETS_SECONDS.length ? RTT_BUCKETS_SECONDS[b]! : '+Inf';
        values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels, value: g.rttSum, metricName: `${this.name}_sum` });
      values.push({ labels, value: g.rttCount, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Observations are the tracker's and are not reset. */
  reset(): void {}
}

/**
 * Registers TCP metrics of tracked connections in a prom-client registry,
 * following `collectDefaultMetrics`' conventions (`register`, `prefix`,
 * `labels`; values computed at scrape time, never by timers), and returns
 * the tracker that says which connections count.
 *
 * Every scrape makes one sweep of all tracked connections on the libuv
 * thread pool, shared by all the metrics below; the main thread only
 * gathers fds and adds up the rows, in chunks.
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `sockstate_connections` | gauge | role, scope, status |
 * | `sockstate_tcp_rtt_seconds` | histogram | role, scope |
 * | `sockstate_tcp_retransmitted_segments_total` | counter | role, scope |
 * | `sockstate_tcp_segments_sent_total` | counter | role, scope |
 * | `sockstate_tcp_bytes_sent_total` | counter | role, scope |
 * | `sockstate_tcp_bytes_received_total` | counter | role, scope |
 * | `sockstate_tcp_retrans_segments` | gauge | role, scope |
 * | `sockstate_tcp_lost_segments` | gauge | role, scope |
 * | `sockstate_tcp_silent_connections` | gauge | role, scope |
 * | `sockstate_connections_closed_total` | counter | role, scope |
 * | `sockstate_reuse_checks_total` | counter | scope, result |
 *
 * @param options - See {@link CollectTcpMetricsOptions}.
 * @returns The tracker; its `stop()` unregisters every metric.
 * @throws SockstateError `ERR_SOCKSTATE_PEER_MISSING` when prom-client is
 *   not installed.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a
 *   bad option (a prefix that makes invalid names, a label the metrics
 *   set themselves); RangeError `ERR_OUT_OF_RANGE` for `maxScopes` or
 *   `maxSilentMs` out of range.
 */
export function collectTcpMetrics(options?: CollectTcpMetricsOptions): TcpMetricsTracker {
  const opts = checkOptions(options, 'options');
  const prefixValue = own(opts, 'prefix');
  if (prefixValue !== undefined && typeof prefixValue !== 'string') {
    throw invalidArgType('options.prefix', 'of type string', prefixValue);
  }
  const prefix = prefixValue ?? '';
  if (prefix !== '' && !NAME_PATTERN.test(prefix)) {
    throw invalidArgValue('options.prefix', 'must make valid metric names ([a-zA-Z_:][a-zA-Z0-9_:]*)');
  }
  const staticLabels = checkStaticLabels(own(opts, 'labels'), 'options.labels', RESERVED);
  const registerValue = own(opts, 'register');
  if (
    registerValue !== undefined &&
    (typeof registerValue !== 'object' ||
      registerValue === null ||
      typeof (registerValue as PromRegistry).registerMetric !== 'function')
  ) {
    throw invalidArgType('options.register', 'a prom-client Registry', registerValue);
  }
  const prom = requirePeer<PromClient>('prom-client', 'sockstate/prometheus');
  const register = (registerValue as PromRegistry | undefined) ?? (prom.register as unknown as PromRegistry);
  for (const name of METRIC_NAMES) {
    if (register.getSingleMetric(prefix + name) !== undefined) {
      throw invalidArgValue('options.register', `already holds ${prefix + name}: stop() the tracker that registered it, or use another prefix`);
    }
  }
  const tracker = new TcpTracker(trackerOptions(opts));
  const extra = Object.keys(staticLabels);
  const groupLabels = (g: MetricGroup) => ({ ...staticLabels, role: g.role, scope: g.scope });
  const registers = [register as unknown as InstanceType<PromClient['Registry']>];
  const names: string[] = [];

  function gauge(name: string, help: string, set: (metric: InstanceType<PromClient['Gauge']>) => void): void {
    const full = prefix + name;
    new prom.Gauge({
      name: full,
      help,
      labelNames: name === 'sockstate_connections' ? ['role', 'scope', 'status', ...extra] : ['role', 'scope', ...extra],
      registers,
      async collect() {
        await tracker.collect();
        set(this);
      },
    });
    names.push(full);
  }

  // Counters report the tracker's running totals as increments.
  const reported = new Reported(5);
  function counter(name: string, help: string, k: number, total: (g: MetricGroup) => number): void {
    const full = prefix + name;
    new prom.Counter({
      name: full,
      help,
      labelNames: ['role', 'scope', ...extra],
      registers,
      async collect() {
        await tracker.collect();
        tracker.groups.forEach((g, i) => this.inc(groupLabels(g), reported.delta(i, k, total(g))));
      },
    });
    names.push(full);
  }

  gauge(
    'sockstate_connections',
    'Tracked connections by status (from tcpi_state and poll): a growing peerClosed count is a CLOSE_WAIT leak',
    (m) => {
      for (const g of tracker.groups) {
        TRACKED_STATUSES.forEach((status, i) => m.set({ ...groupLabels(g), status }, g.statusCounts[i]!));
      }
    },
  );
  gauge('sockstate_tcp_retrans_segments', 'Segments being retransmitted now (sum of tcpi_retrans)', (m) => {
    for (const g of tracker.groups) m.set(groupLabels(g), g.retransNow);
  });
  gauge('sockstate_tcp_lost_segments', 'Segments considered lost now (sum of tcpi_lost)', (m) => {
    for (const g of tracker.groups) m.set(groupLabels(g), g.lostNow);
  });
  gauge(
    'sockstate_tcp_silent_connections',
    'Open connections whose peer sent nothing, ACKs included, for longer than maxSilentMs',
    (m) => {
      for (const g of tracker.groups) m.set(groupLabels(g), g.silentNow);
    },
  );
  counter('sockstate_tcp_retransmitted_segments_total', 'Segments retransmitted (tcpi_total_retrans deltas)', 0, (g) => g.retransmittedSegments);
  counter('sockstate_tcp_segments_sent_total', 'Segments sent, retransmissions included (tcpi_segs_out deltas)', 1, (g) => g.segmentsSent);
  counter(
    'sockstate_tcp_bytes_sent_total',
    'Data bytes the peer acknowledged (tcpi_bytes_acked deltas less our SYN and FIN, which the kernel counts as one byte each)',
    2,
    (g) => g.bytesSent,
  );
  counter(
    'sockstate_tcp_bytes_received_total',
    "Data bytes received, read by the application or not (tcpi_bytes_received deltas less the peer's FIN, which the kernel counts as one byte)",
    3,
    (g) => g.bytesReceived,
  );
  counter('sockstate_connections_closed_total', 'Tracked connections closed, their final figures counted', 4, (g) => g.closed);

  const rttName = `${prefix}sockstate_tcp_rtt_seconds`;
  register.registerMetric(new RttHistogram(rttName, tracker, staticLabels));
  names.push(rttName);

  const reuseName = `${prefix}sockstate_reuse_checks_total`;
  const reuseReported = new Map<string, number>();
  new prom.Counter({
    name: reuseName,
    help: 'Reuse checks made by tracked agents and pool guards, by result (the verdict reason; idle means reused)',
    labelNames: ['scope', 'result', ...extra],
    registers,
    collect() {
      for (const [scope, results] of tracker.reuseChecks) {
        for (const [result, total] of results) {
          const key = `${scope}\u0000${result}`;
          this.inc({ ...staticLabels, scope, result }, total - (reuseReported.get(key) ?? 0));
          reuseReported.set(key, total);
        }
      }
    },
  });
  names.push(reuseName);

  return publicTracker(tracker, () => {
    for (const name of names) register.removeSingleMetric(name);
  });
}
