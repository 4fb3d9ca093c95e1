/**
 * One `node:diagnostics_channel` on which every guard (the HTTP agents,
 * `sockstate/undici`, the pool guards) reports each reuse check it makes.
 * Metrics subscribe to it; nothing is published when nobody listens, so an
 * unobserved check costs one property read.
 *
 * @packageDocumentation
 */
import * as diagnostics from 'node:diagnostics_channel';

/** The channel's name: `'sockstate:reuse-check'`. */
export const REUSE_CHECK_CHANNEL = 'sockstate:reuse-check';

/** What a guard publishes for one reuse check. */
export interface ReuseCheckMessage {
  /** The agent, dispatcher or pool that made the check. */
  readonly owner: object;
  /** True when the connection was handed out, false when it was evicted. */
  readonly reusable: boolean;
  /** The verdict's reason (`'idle'`, `'dataPending'`, `'closed'`, …). */
  readonly reason: string;
}

/** The channel itself, for subscribers (`channel.subscribe(fn)`). */
export const reuseCheckChannel: diagnostics.Channel = diagnostics.channel(REUSE_CHECK_CHANNEL);

/** Publishes one check when anybody subscribes. */
export function publishReuseCheck(owner: object, reusable: boolean, reason: string): void {
  if (reuseCheckChannel.hasSubscribers) {
    reuseCheckChannel.publish({ owner, reusable, reason } satisfies ReuseCheckMessage);
  }
}
