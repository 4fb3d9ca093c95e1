import { codedError } from '../errors';
import type { LayoutField, NativeBinding } from './binding';
import type { TcpStateName } from './state';

/**
 * The kernel's `struct tcp_info` for one socket, field by field, named as
 * the kernel's `tcpi_` fields in camelCase. `u64` counters are `bigint`,
 * the rest `number`. Fields the running kernel did not fill are
 * `undefined` (never a made-up zero); the kernel each one needs is noted.
 *
 * Units: `rto`, `ato`, `rtt`, `rttvar`, `minRtt`, `rcvRtt`, `busyTime`,
 * `rwndLimited`, `sndbufLimited` in µs; `lastDataSent`, `lastDataRecv`,
 * `lastAckRecv`, `totalRtoTime` in ms; `sndCwnd`, `unacked`, `sacked`,
 * `lost`, `retrans` in segments; `*Rate` in bytes per second.
 */
export interface TcpInfo {
  /** Bytes of the struct the kernel filled (104 on 2.6, 280 on 6.18). */
  readonly length: number;
  /** Connection state (`tcpi_state`). */
  readonly state: TcpStateName;
  /** Congestion-avoidance state: 0 Open, 1 Disorder, 2 CWR, 3 Recovery, 4 Loss. */
  readonly caState: number;
  /** Retransmits of the current RTO episode (reset on progress). */
  readonly retransmits: number;
  /** Unanswered zero-window or keepalive probes. */
  readonly probes: number;
  /** RTO exponential backoff. */
  readonly backoff: number;
  /** `TCPI_OPT_*` bits negotiated (timestamps 1, SACK 2, wscale 4, ECN 8, ...). */
  readonly options: number;
  /** Send window scale (bitfield, decoded in C++). */
  readonly sndWscale: number;
  /** Receive window scale (bitfield, decoded in C++). */
  readonly rcvWscale: number;
  /** 1 when the last delivery-rate sample was application-limited (bitfield). */
  readonly deliveryRateAppLimited: number;
  /** Why TCP Fast Open failed on this client, 0 if it did not (bitfield). */
  readonly fastopenClientFail: number;
  /** Retransmission timeout, µs. */
  readonly rto: number;
  /** Delayed-ACK timeout, µs. */
  readonly ato: number;
  /** Send MSS, bytes. */
  readonly sndMss: number;
  /** Receive MSS estimate, bytes. */
  readonly rcvMss: number;
  /** Segments in flight (on LISTEN: the accept queue length). */
  readonly unacked: number;
  /** SACKed segments (on LISTEN: the backlog). */
  readonly sacked: number;
  /** Segments considered lost. */
  readonly lost: number;
  /** Retransmitted segments in flight. */
  readonly retrans: number;
  /** Unused since Linux 4.15; kept for the layout. */
  readonly fackets: number;
  /** ms since data was last sent. */
  readonly lastDataSent: number;
  /** Never set by the kernel ("not remembered"); kept for the layout. */
  readonly lastAckSent: number;
  /** ms since data was last received. */
  readonly lastDataRecv: number;
  /** ms since an ACK was last received. */
  readonly lastAckRecv: number;
  /** Path MTU, bytes. */
  readonly pmtu: number;
  /** Receive slow-start threshold, bytes. */
  readonly rcvSsthresh: number;
  /** Smoothed round-trip time, µs. */
  readonly rtt: number;
  /** Round-trip time variance, µs. */
  readonly rttvar: number;
  /** Send slow-start threshold, segments. */
  readonly sndSsthresh: number;
  /** Congestion window, segments. */
  readonly sndCwnd: number;
  /** Advertised MSS, bytes. */
  readonly advmss: number;
  /** Reordering metric, segments. */
  readonly reordering: number;
  /** Receiver-side RTT estimate, µs. */
  readonly rcvRtt: number;
  /** Receive-buffer autotuning space, bytes. */
  readonly rcvSpace: number;
  /** Retransmitted segments over the connection's life. */
  readonly totalRetrans: number;
  /** Pacing rate, bytes/s (Linux 3.15). */
  readonly pacingRate: bigint | undefined;
  /** Maximum pacing rate, bytes/s (3.15). */
  readonly maxPacingRate: bigint | undefined;
  /** Bytes acknowledged by the peer (4.1). */
  readonly bytesAcked: bigint | undefined;
  /** Bytes received from the peer (4.1). */
  readonly bytesReceived: bigint | undefined;
  /** Segments sent (4.2). */
  readonly segsOut: number | undefined;
  /** Segments received (4.2). */
  readonly segsIn: number | undefined;
  /** Bytes queued and not yet sent (4.6). */
  readonly notsentBytes: number | undefined;
  /** Minimum RTT seen, µs (4.6). */
  readonly minRtt: number | undefined;
  /** Segments received carrying data (4.6). */
  readonly dataSegsIn: number | undefined;
  /** Segments sent carrying data (4.6). */
  readonly dataSegsOut: number | undefined;
  /** Delivery rate estimate, bytes/s (4.9). */
  readonly deliveryRate: bigint | undefined;
  /** Time busy sending data, µs (4.10). */
  readonly busyTime: bigint | undefined;
  /** Time limited by the receive window, µs (4.10). */
  readonly rwndLimited: bigint | undefined;
  /** Time limited by the send buffer, µs (4.10). */
  readonly sndbufLimited: bigint | undefined;
  /** Segments delivered, retransmits included (4.18). */
  readonly delivered: number | undefined;
  /** Segments delivered with ECN CE marks (4.18). */
  readonly deliveredCe: number | undefined;
  /** Bytes sent, retransmits included (4.19). */
  readonly bytesSent: bigint | undefined;
  /** Bytes retransmitted (4.19). */
  readonly bytesRetrans: bigint | undefined;
  /** DSACKs received (4.19). */
  readonly dsackDups: number | undefined;
  /** Reordering events seen (4.19). */
  readonly reordSeen: number | undefined;
  /** Out-of-order packets received (5.4). */
  readonly rcvOoopack: number | undefined;
  /** Peer's advertised receive window after scaling, bytes (5.4). */
  readonly sndWnd: number | undefined;
  /** Our advertised receive window after scaling, bytes (6.2). */
  readonly rcvWnd: number | undefined;
  /** PLB or timeout-triggered rehash attempts (6.2). */
  readonly rehash: number | undefined;
  /** RTO timeouts, SYN and recurring ones included (6.7). */
  readonly totalRto: number | undefined;
  /** RTO recoveries, an unfinished one included (6.7). */
  readonly totalRtoRecoveries: number | undefined;
  /** Time spent in RTO recoveries, ms (6.7). */
  readonly totalRtoTime: number | undefined;
  /** CE marks received (6.18). */
  readonly receivedCe: number | undefined;
  /** Accurate ECN: bytes delivered with ECT(1) (6.18). */
  readonly deliveredE1Bytes: number | undefined;
  /** Accurate ECN: bytes delivered with ECT(0) (6.18). */
  readonly deliveredE0Bytes: number | undefined;
  /** Accurate ECN: bytes delivered with CE (6.18). */
  readonly deliveredCeBytes: number | undefined;
  /** Accurate ECN: bytes received with ECT(1) (6.18). */
  readonly receivedE1Bytes: number | undefined;
  /** Accurate ECN: bytes received with ECT(0) (6.18). */
  readonly receivedE0Bytes: number | undefined;
  /** Accurate ECN: bytes received with CE (6.18). */
  readonly receivedCeBytes: number | undefined;
}

/** Decodes the buffer the binding's tcpInfo() fills. */
export interface TcpInfoDecoder {
  /** The buffer to pass to the binding; reused by every call. */
  readonly buffer: Uint8Array;
  /** Builds a TcpInfo from the first `length` bytes the kernel filled. */
  decode(length: number): TcpInfo;
}

type Layout = NativeBinding['tcpInfoLayout'];

/**
 * Builds a decoder from the layout the binding exports, so no offset is
 * typed twice. Each field's size is checked against the type read here.
 */
export function createTcpInfoDecoder(layout: Layout, stateNames: readonly (string | undefined)[]): TcpInfoDecoder {
  const buffer = new Uint8Array(new ArrayBuffer(Math.ceil(layout.bufferSize / 8) * 8));
  const u8 = buffer;
  const u16 = new Uint16Array(buffer.buffer);
  const u32 = new Uint32Array(buffer.buffer);
  const u64 = new BigUint64Array(buffer.buffer);

  // Element index into the view of the field's size, and the length needed.
  function at(name: string, size: number): [index: number, end: number] {
    const field: LayoutField | undefined = layout.fields[name];
    if (field === undefined) throw new Error(`tcp_info layout has no field ${name}`);
    const [offset, fieldSize, end] = field;
    if (fieldSize !== size || offset % size !== 0) {
      throw new Error(`tcp_info field ${name}: size ${fieldSize} at ${offset}, expected ${size}-byte aligned`);
    }
    return [offset / size, end];
  }

  const [state] = at('state', 1);
  const [caState] = at('caState', 1);
  const [retransmits] = at('retransmits', 1);
  const [probes] = at('probes', 1);
  const [backoff] = at('backoff', 1);
  const [options] = at('options', 1);
  const [sndWscale] = at('sndWscale', 1);
  const [rcvWscale] = at('rcvWscale', 1);
  const [deliveryRateAppLimited] = at('deliveryRateAppLimited', 1);
  const [fastopenClientFail] = at('fastopenClientFail', 1);
  const [rto] = at('rto', 4);
  const [ato] = at('ato', 4);
  const [sndMss] = at('sndMss', 4);
  const [rcvMss] = at('rcvMss', 4);
  const [unacked] = at('unacked', 4);
  const [sacked] = at('sacked', 4);
  const [lost] = at('lost', 4);
  const [retrans] = at('retrans', 4);
  const [fackets] = at('fackets', 4);
  const [lastDataSent] = at('lastDataSent', 4);
  const [lastAckSent] = at('lastAckSent', 4);
  const [lastDataRecv] = at('lastDataRecv', 4);
  const [lastAckRecv] = at('lastAckRecv', 4);
  const [pmtu] = at('pmtu', 4);
  const [rcvSsthresh] = at('rcvSsthresh', 4);
  const [rtt] = at('rtt', 4);
  const [rttvar] = at('rttvar', 4);
  const [sndSsthresh] = at('sndSsthresh', 4);
  const [sndCwnd] = at('sndCwnd', 4);
  const [advmss] = at('advmss', 4);
  const [reordering] = at('reordering', 4);
  const [rcvRtt] = at('rcvRtt', 4);
  const [rcvSpace] = at('rcvSpace', 4);
  const [totalRetrans, baseEnd] = at('totalRetrans', 4);
  const [pacingRate, pacingRateEnd] = at('pacingRate', 8);
  const [maxPacingRate, maxPacingRateEnd] = at('maxPacingRate', 8);
  const [bytesAcked, bytesAckedEnd] = at('bytesAcked', 8);
  const [bytesReceived, bytesReceivedEnd] = at('bytesReceived', 8);
  const [segsOut, segsOutEnd] = at('segsOut', 4);
  const [segsIn, segsInEnd] = at('segsIn', 4);
  const [notsentBytes, notsentBytesEnd] = at('notsentBytes', 4);
  const [minRtt, minRttEnd] = at('minRtt', 4);
  const [dataSegsIn, dataSegsInEnd] = at('dataSegsIn', 4);
  const [dataSegsOut, dataSegsOutEnd] = at('dataSegsOut', 4);
  const [deliveryRate, deliveryRateEnd] = at('deliveryRate', 8);
  const [busyTime, busyTimeEnd] = at('busyTime', 8);
  const [rwndLimited, rwndLimitedEnd] = at('rwndLimited', 8);
  const [sndbufLimited, sndbufLimitedEnd] = at('sndbufLimited', 8);
  const [delivered, deliveredEnd] = at('delivered', 4);
  const [deliveredCe, deliveredCeEnd] = at('deliveredCe', 4);
  const [bytesSent, bytesSentEnd] = at('bytesSent', 8);
  const [bytesRetrans, bytesRetransEnd] = at('bytesRetrans', 8);
  const [dsackDups, dsackDupsEnd] = at('dsackDups', 4);
  const [reordSeen, reordSeenEnd] = at('reordSeen', 4);
  const [rcvOoopack, rcvOoopackEnd] = at('rcvOoopack', 4);
  const [sndWnd, sndWndEnd] = at('sndWnd', 4);
  const [rcvWnd, rcvWndEnd] = at('rcvWnd', 4);
  const [rehash, rehashEnd] = at('rehash', 4);
  const [totalRto, totalRtoEnd] = at('totalRto', 2);
  const [totalRtoRecoveries, totalRtoRecoveriesEnd] = at('totalRtoRecoveries', 2);
  const [totalRtoTime, totalRtoTimeEnd] = at('totalRtoTime', 4);
  const [receivedCe, receivedCeEnd] = at('receivedCe', 4);
  const [deliveredE1Bytes, deliveredE1BytesEnd] = at('deliveredE1Bytes', 4);
  const [deliveredE0Bytes, deliveredE0BytesEnd] = at('deliveredE0Bytes', 4);
  const [deliveredCeBytes, deliveredCeBytesEnd] = at('deliveredCeBytes', 4);
  const [receivedE1Bytes, receivedE1BytesEnd] = at('receivedE1Bytes', 4);
  const [receivedE0Bytes, receivedE0BytesEnd] = at('receivedE0Bytes', 4);
  const [receivedCeBytes, receivedCeBytesEnd] = at('receivedCeBytes', 4);

  function decode(n: number): TcpInfo {
    if (n < baseEnd) {
      throw codedError(
        'ERR_SOCKSTATE_SHORT_TCP_INFO',
        `tcpInfo(): the kernel filled ${n} bytes of tcp_info, fewer than the ${baseEnd} every supported kernel fills`,
      );
    }
    return {
      length: n,
      state: (stateNames[u8[state]!] ?? 'UNKNOWN') as TcpStateName,
      caState: u8[caState]!,
      retransmits: u8[retransmits]!,
      probes: u8[probes]!,
      backoff: u8[backoff]!,
      options: u8[options]!,
      sndWscale: u8[sndWscale]!,
      rcvWscale: u8[rcvWscale]!,
      deliveryRateAppLimited: u8[deliveryRateAppLimited]!,
      fastopenClientFail: u8[fastopenClientFail]!,
      rto: u32[rto]!,
      ato: u32[ato]!,
      sndMss: u32[sndMss]!,
      rcvMss: u32[rcvMss]!,
      unacked: u32[unacked]!,
      sacked: u32[sacked]!,
      lost: u32[lost]!,
      retrans: u32[retrans]!,
      fackets: u32[fackets]!,
      lastDataSent: u32[lastDataSent]!,
      lastAckSent: u32[lastAckSent]!,
      lastDataRecv: u32[lastDataRecv]!,
      lastAckRecv: u32[lastAckRecv]!,
      pmtu: u32[pmtu]!,
      rcvSsthresh: u32[rcvSsthresh]!,
      rtt: u32[rtt]!,
      rttvar: u32[rttvar]!,
      sndSsthresh: u32[sndSsthresh]!,
      sndCwnd: u32[sndCwnd]!,
      advmss: u32[advmss]!,
      reordering: u32[reordering]!,
      rcvRtt: u32[rcvRtt]!,
      rcvSpace: u32[rcvSpace]!,
      totalRetrans: u32[totalRetrans]!,
      pacingRate: n >= pacingRateEnd ? u64[pacingRate] : undefined,
      maxPacingRate: n >= maxPacingRateEnd ? u64[maxPacingRate] : undefined,
      bytesAcked: n >= bytesAckedEnd ? u64[bytesAcked] : undefined,
      bytesReceived: n >= bytesReceivedEnd ? u64[bytesReceived] : undefined,
      segsOut: n >= segsOutEnd ? u32[segsOut] : undefined,
      segsIn: n >= segsInEnd ? u32[segsIn] : undefined,
      notsentBytes: n >= notsentBytesEnd ? u32[notsentBytes] : undefined,
      minRtt: n >= minRttEnd ? u32[minRtt] : undefined,
      dataSegsIn: n >= dataSegsInEnd ? u32[dataSegsIn] : undefined,
      dataSegsOut: n >= dataSegsOutEnd ? u32[dataSegsOut] : undefined,
      deliveryRate: n >= deliveryRateEnd ? u64[deliveryRate] : undefined,
      busyTime: n >= busyTimeEnd ? u64[busyTime] : undefined,
      rwndLimited: n >= rwndLimitedEnd ? u64[rwndLimited] : undefined,
      sndbufLimited: n >= sndbufLimitedEnd ? u64[sndbufLimited] : undefined,
      delivered: n >= deliveredEnd ? u32[delivered] : undefined,
      deliveredCe: n >= deliveredCeEnd ? u32[deliveredCe] : undefined,
      bytesSent: n >= bytesSentEnd ? u64[bytesSent] : undefined,
      bytesRetrans: n >= bytesRetransEnd ? u64[bytesRetrans] : undefined,
      dsackDups: n >= dsackDupsEnd ? u32[dsackDups] : undefined,
      reordSeen: n >= reordSeenEnd ? u32[reordSeen] : undefined,
      rcvOoopack: n >= rcvOoopackEnd ? u32[rcvOoopack] : undefined,
      sndWnd: n >= sndWndEnd ? u32[sndWnd] : undefined,
      rcvWnd: n >= rcvWndEnd ? u32[rcvWnd] : undefined,
      rehash: n >= rehashEnd ? u32[rehash] : undefined,
      totalRto: n >= totalRtoEnd ? u16[totalRto] : undefined,
      totalRtoRecoveries: n >= totalRtoRecoveriesEnd ? u16[totalRtoRecoveries] : undefined,
      totalRtoTime: n >= totalRtoTimeEnd ? u32[totalRtoTime] : undefined,
      receivedCe: n >= receivedCeEnd ? u32[receivedCe] : undefined,
      deliveredE1Bytes: n >= deliveredE1BytesEnd ? u32[deliveredE1Bytes] : undefined,
      deliveredE0Bytes: n >= deliveredE0BytesEnd ? u32[deliveredE0Bytes] : undefined,
      deliveredCeBytes: n >= deliveredCeBytesEnd ? u32[deliveredCeBytes] : undefined,
      receivedE1Bytes: n >= receivedE1BytesEnd ? u32[receivedE1Bytes] : undefined,
      receivedE0Bytes: n >= receivedE0BytesEnd ? u32[receivedE0Bytes] : undefined,
      receivedCeBytes: n >= receivedCeBytesEnd ? u32[receivedCeBytes] : undefined,
    };
  }

  return { buffer, decode };
}
