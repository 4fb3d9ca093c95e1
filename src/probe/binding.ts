/**
 * The raw binding's interface, as the C++ side registers it
 * (native/addon.cc): types only, so that the loader (native.ts) and the
 * tcp_info decoder (tcp-info.ts) both name it without importing each other.
 *
 * @packageDocumentation
 */

/** `[offset in the tcpInfo buffer, size in bytes, struct length needed]`. */
export type LayoutField = readonly [offset: number, size: number, end: number];

/** Raw binding as the C++ side registers it (native/addon.cc). */
export interface NativeBinding {
  /** True when the addon was built with the Linux probes. */
  readonly platformSupported: boolean;
  /** Fills `out` (PROBE_SLOTS int32s) for one fd; returns 0 or -errno. */
  probe(fd: number, out: Int32Array): number;
  /** `poll(POLLIN|POLLOUT|POLLRDHUP, 0)`: revents or -errno. */
  poll(fd: number): number;
  /** Probes every fd into `out` (fds.length × PROBE_SLOTS); returns the count. */
  probeMany(fds: Int32Array, out: Int32Array): number;
  /** Copies `struct tcp_info` into `out`; returns the filled length or -errno. */
  tcpInfo(fd: number, out: Uint8Array): number;
  /** Reads (and clears) SO_ERROR: the pending errno (>= 0) or -errno. */
  soError(fd: number): number;
  /** SO_KEEPALIVE plus TCP_KEEPIDLE/KEEPINTVL/KEEPCNT (seconds; 0 = unchanged). TCP only: -EOPNOTSUPP for other sockets. */
  setKeepAlive(fd: number, enable: 0 | 1, idleS: number, intervalS: number, count: number): number;
  /** Fills `out` with [enabled, idleS, intervalS, count]; returns 0 or -errno. TCP only: -EOPNOTSUPP for other sockets. */
  getKeepAlive(fd: number, out: Int32Array): number;
  /** TCP_USER_TIMEOUT in ms; returns 0 or -errno. TCP only: -EOPNOTSUPP for other sockets. */
  setUserTimeout(fd: number, ms: number): number;
  /** TCP_USER_TIMEOUT in ms, or -errno. TCP only: -EOPNOTSUPP for other sockets. */
  getUserTimeout(fd: number): number;
  /**
   * Off-thread sweep (libuv pool): one metrics row (sampleSlots.COUNT
   * float64s) per fd, kept only when the fd's SO_COOKIE still equals
   * `cookies[i]` after the reads (else RESULT = sweepChanged).
   */
  sweepSample(fds: Int32Array, cookies: BigUint64Array, out: Float64Array): Promise<number>;
  /** {@link NativeBinding.sweepSample} with probeMany's Int32 rows. */
  sweepProbe(fds: Int32Array, cookies: BigUint64Array, out: Int32Array): Promise<number>;
  /** One metrics row for `fd` at `out[row * sampleSlots.COUNT]`, on this thread; 0 or -errno. */
  sample(fd: number, out: Float64Array, row: number): number;
  /** SO_COOKIE of each fd into `out[start + i]` (0 on failure); 0 or the first -errno. */
  cookies(fds: Int32Array, out: BigUint64Array, start: number): number;
  /** Positions in a metrics row (sweepSample, sample). */
  readonly sampleSlots: Readonly<Record<
    | 'RESULT' | 'STATE' | 'REVENTS' | 'STALLED' | 'RTT' | 'RTTVAR' | 'MIN_RTT' | 'SND_CWND'
    | 'TOTAL_RETRANS' | 'RETRANS' | 'LOST' | 'UNACKED' | 'SEGS_OUT' | 'BYTES_ACKED' | 'BYTES_SENT'
    | 'BYTES_RECEIVED' | 'BYTES_RETRANS' | 'LAST_DATA_RECV' | 'LAST_ACK_RECV' | 'LAST_DATA_SENT'
    | 'INFO_LENGTH' | 'COUNT',
    number
  >>;
  /** RESULT of a swept row whose fd no longer names the expected socket. */
  readonly sweepChanged: number;
  /** Positions in a probe's Int32Array. */
  readonly probeSlots: {
    readonly KIND: number;
    readonly STATE: number;
    readonly REVENTS: number;
    readonly UNREAD: number;
    readonly UNSENT: number;
    readonly UNACKED: number;
    readonly RETRANSMITS: number;
    readonly PROBES: number;
    readonly BACKOFF: number;
    readonly INFO_LENGTH: number;
    readonly LISTENING: number;
    readonly RESULT: number;
    readonly SYSCALL: number;
    /** tcpi_last_data_recv in ms, as int32 bits of the u32 (TCP only). */
    readonly LAST_DATA_RECV: number;
    /** tcpi_last_ack_recv in ms, as int32 bits of the u32 (TCP only). */
    readonly LAST_ACK_RECV: number;
    readonly COUNT: number;
  };
  /** Values of the KIND slot. */
  readonly probeKinds: { readonly TCP: number; readonly STREAM: number };
  /** Names of the calls the SYSCALL slot can point at. */
  readonly probeSyscalls: readonly string[];
  /** poll(2) bits as this platform defines them. */
  readonly pollFlags: {
    readonly POLLIN: number;
    readonly POLLOUT: number;
    readonly POLLERR: number;
    readonly POLLHUP: number;
    readonly POLLRDHUP: number;
  };
  /** Kernel TCP state names indexed by state number. */
  readonly tcpStates: readonly (string | undefined)[];
  /** Layout of the buffer tcpInfo() fills. */
  readonly tcpInfoLayout: {
    readonly size: number;
    readonly bufferSize: number;
    readonly fields: Readonly<Record<string, LayoutField>>;
  };
}
