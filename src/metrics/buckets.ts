/**
 * Histogram bucket bounds for the round-trip time, in seconds: 100 µs on
 * loopback and in a rack to 5 s on a failing path, about three per decade.
 */
export const RTT_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
]);

/** Index of the first bound >= `seconds`, or `bounds.length` for +Inf. */
export function bucketOf(bounds: readonly number[], seconds: number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (bounds[mid]! >= seconds) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
