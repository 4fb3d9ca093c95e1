/**
 * The `node:diagnostics_channel`s on which every guard (the HTTP agents,
 * `sockstate/undici`, the pool guards) reports each reuse check it makes
 * and each connection it opens or adopts. Metrics subscribe to them;
 * nothing is published when nobody listens, so an unobserved guard pays
 * one property read.
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

/** The name of the channel on which guards announce each new connection: `'sockstate:connection'`. */
export const CONNECTION_CHANNEL = 'sockstate:connection';

/** What a guard publishes when a connection it manages appears. */
export interface ConnectionMessage {
  /** The agent, dispatcher or pool that owns the connection. */
  readonly owner: object;
  /** The connection's socket (a `net.Socket` or `tls.TLSSocket`). */
  readonly socket: object;
}

/** The channel itself, for subscribers such as the metrics trackers. */
export const connectionChannel: diagnostics.Channel = diagnostics.channel(CONNECTION_CHANNEL);

/** Publishes a new connection of `owner` when anybody subscribes. */
export function publishConnection(owner: object, socket: object): void {
  if (connectionChannel.hasSubscribers) {
    connectionChannel.publish({ owner, socket } satisfies ConnectionMessage);
  }
}

/** The name of the channel on which guards announce each request they send again: `'sockstate:replay'`. */
export const REPLAY_CHANNEL = 'sockstate:replay';

/** What a guard publishes when it sends a request again. */
export interface ReplayMessage {
  /** The dispatcher that sends it again. */
  readonly owner: object;
  /** The request's origin, as given to `dispatch()`. */
  readonly origin: string;
  /** The request's method. */
  readonly method: string;
  /** The request's path. */
  readonly path: string;
}

/** The channel itself, for subscribers. */
export const replayChannel: diagnostics.Channel = diagnostics.channel(REPLAY_CHANNEL);

/** Publishes one replay when anybody subscribes. */
export function publishReplay(owner: object, origin: string, method: string, path: string): void {
  if (replayChannel.hasSubscribers) {
    replayChannel.publish({ owner, origin, method, path } satisfies ReplayMessage);
  }
}
