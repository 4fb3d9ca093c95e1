/**
 * `sockstate/otel`: TCP metrics of tracked connections as OpenTelemetry
 * instruments, fed by one batch callback that makes one off-thread kernel
 * sweep per collection.
 *
 * @packageDocumentation
 */
import type * as otel from '@opentelemetry/api';
import { invalidArgType } from '../errors';
import { RTT_BUCKETS_SECONDS } from './buckets';
import { publicTracker, type TcpMetricsTracker, trackerOptions } from './exporter';
import { checkOptions, own, TRACKED_STATUSES } from './labels';
import { type MetricGroup, TcpTracker, type TrackerOptions } from './tracker';
import { requirePeer } from '../integrations/peer';

export type { TcpMetricsTracker } from './exporter';
export type { MetricGroup, TrackerOptions, TrackHandle, TrackOptions } from './tracker';
export { RTT_BUCKETS_SECONDS } from './buckets';
export { TRACKED_STATUSES } from './labels';
export type { TrackedStatus, TrackRole } from './labels';

/** Options of {@link observeTcpMetrics}. */
export interface ObserveTcpMetricsOptions extends TrackerOptions {
  /** Where the meter comes from; the global `MeterProvider` of `@opentelemetry/api` when absent. */
  meterProvider?: otel.MeterProvider;
}

type OtelApi = typeof import('@opentelemetry/api');

// RTT values are recorded one by one into a synchronous histogram (there is
// no observable histogram); this many per turn of the event loop.
const RECORD_CHUNK = 1000;

/**
 * Creates the instruments below on a meter named `'sockstate'` and returns
 * the tracker that says which connections count. One batch callback serves
 * every observable instrument: each collection makes one sweep of all
 * tracked connections on the libuv thread pool.
 *
 * | instrument | kind | unit | attributes |
 * |---|---|---|---|
 * | `sockstate.connection.count` | ObservableUpDownCounter | `{connection}` | role, scope, status |
 * | `sockstate.tcp.rtt` | Histogram | `s` | role, scope |
 * | `sockstate.tcp.retransmitted_segments` | ObservableCounter | `{segment}` | role, scope |
 * | `sockstate.tcp.segments_sent` | ObservableCounter | `{segment}` | role, scope |
 * | `sockstate.tcp.io` | ObservableCounter | `By` | role, scope, `network.io.direction` |
 * | `sockstate.tcp.retrans_segments` | ObservableGauge | `{segment}` | role, scope |
 * | `sockstate.tcp.lost_segments` | ObservableGauge | `{segment}` | role, scope |
 * | `sockstate.connection.silent` | ObservableUpDownCounter | `{connection}` | role, scope |
 * | `sockstate.connection.closed` | ObservableCounter | `{connection}` | role, scope |
 * | `sockstate.reuse_check.count` | ObservableCounter | `{check}` | scope, result |
 *
 * Attribute keys: `sockstate.role`, `sockstate.scope`,
 * `sockstate.connection.status`, `sockstate.reuse.result`. The RTT
 * histogram gets one value per open connection per collection (and one at
 * close for a connection no collection saw), recorded during the batch
 * callback. With several readers on one provider, each reader's collection
 * makes its sweep, and every reader receives every recorded value once: a
 * reader's histogram counts one value per open connection per collection
 * of any reader. Collections at the same time share one sweep.
 *
 * @param options - See {@link ObserveTcpMetricsOptions}.
 * @returns The tracker; its `stop()` removes the batch callback.
 * @throws SockstateError `ERR_SOCKSTATE_PEER_MISSING` when
 *   `@opentelemetry/api` is not installed.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for a bad option; RangeError
 *   `ERR_OUT_OF_RANGE` for `maxScopes` or `maxSilentMs` out of range.
 */
export function observeTcpMetrics(options?: ObserveTcpMetricsOptions): TcpMetricsTracker {
  const opts = checkOptions(options, 'options');
  const providerValue = own(opts, 'meterProvider');
  if (
    providerValue !== undefined &&
    (typeof providerValue !== 'object' ||
      providerValue === null ||
      typeof (providerValue as otel.MeterProvider).getMeter !== 'function')
  ) {
    throw invalidArgType('options.meterProvider', 'an OpenTelemetry MeterProvider', providerValue);
  }
  const api = requirePeer<OtelApi>('@opentelemetry/api', 'sockstate/otel');
  const tracker = new TcpTracker(trackerOptions(opts));
  tracker.logRtts();
  const provider = (providerValue as otel.MeterProvider | undefined) ?? api.metrics.getMeterProvider();
  const meter = provider.getMeter('sockstate');

  const connections = meter.createObservableUpDownCounter('sockstate.connection.count', {
    description: 'Tracked connections by status (from tcpi_state and poll); peerClosed that never goes down is a CLOSE_WAIT leak',
    unit: '{connection}',
  });
  const rtt = meter.createHistogram('sockstate.tcp.rtt', {
    description: 'Smoothed round-trip time (tcpi_rtt) of tracked connections',
    unit: 's',
    advice: { explicitBucketBoundaries: [...RTT_BUCKETS_SECONDS] },
  });
  const retransmitted = meter.createObservableCounter('sockstate.tcp.retransmitted_segments', {
    description: 'Segments retransmitted (tcpi_total_retrans deltas)',
    unit: '{segment}',
  });
  const segments = meter.createObservableCounter('sockstate.tcp.segments_sent', {
    description: 'Segments sent, retransmissions included (tcpi_segs_out deltas)',
    unit: '{segment}',
  });
  const io = meter.createObservableCounter('sockstate.tcp.io', {
    description:
      'Data bytes the peer acknowledged (transmit) and data bytes received (receive); not the SYN and FINs, which tcp_info counts as one byte each',
    unit: 'By',
  });
  const retrans = meter.createObservableGauge('sockstate.tcp.retrans_segments', {
    description: 'Segments being retransmitted now (sum of tcpi_retrans)',
    unit: '{segment}',
  });
  const lost = meter.createObservableGauge('sockstate.tcp.lost_segments', {
    description: 'Segments considered lost now (sum of tcpi_lost)',
    unit: '{segment}',
  });
  const silent = meter.createObservableUpDownCounter('sockstate.connection.silent', {
    description: 'Open connections whose peer sent nothing, ACKs included, for longer than maxSilentMs',
    unit: '{connection}',
  });
  const closed = meter.createObservableCounter('sockstate.connection.closed', {
    description: 'Tracked connections closed, their final figures counted',
    unit: '{connection}',
  });
  const reuseChecks = meter.createObservableCounter('sockstate.reuse_check.count', {
    description: 'Reuse checks made by tracked agents and pool guards, by result (idle means reused)',
    unit: '{check}',
  });
  const observables = [connections, retransmitted, segments, io, retrans, lost, silent, closed, reuseChecks];

  const attributesOf = (g: MetricGroup): otel.Attributes => ({ 'sockstate.role': g.role, 'sockstate.scope': g.scope });
  const callback: otel.BatchObservableCallback = async (result) => {
    await tracker.collect();
    const groups = tracker.groups;
    for (const g of groups) {
      const attributes = attributesOf(g);
      TRACKED_STATUSES.forEach((status, i) => {
        result.observe(connections, g.statusCounts[i]!, { ...attributes, 'sockstate.connection.status': status });
      });
      result.observe(retransmitted, g.retransmittedSegments, attributes);
      result.observe(segments, g.segmentsSent, attributes);
      result.observe(io, g.bytesSent, { ...attributes, 'network.io.direction': 'transmit' });
      result.observe(io, g.bytesReceived, { ...attributes, 'network.io.direction': 'receive' });
      result.observe(retrans, g.retransNow, attributes);
      result.observe(lost, g.lostNow, attributes);
      result.observe(silent, g.silentNow, attributes);
      result.observe(closed, g.closed, attributes);
    }
    for (const [scope, results] of tracker.reuseChecks) {
      for (const [reason, total] of results) {
        result.observe(reuseChecks, total, { 'sockstate.scope': scope, 'sockstate.reuse.result': reason });
      }
    }
    const attributes = groups.map(attributesOf);
    await tracker.takeRttLog((g, seconds) => rtt.record(seconds, attributes[g] ?? attributesOf(tracker.groups[g]!)), RECORD_CHUNK);
  };
  meter.addBatchObservableCallback(callback, observables);

  return publicTracker(tracker, () => meter.removeBatchObservableCallback(callback, observables));
}
