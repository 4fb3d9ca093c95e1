/**
 * Sending a request again, once, when the kernel proves the server never
 * received it (see `../replay`). The guarded Client wraps the handler of a
 * request it sends on a reused connection; when that request fails before
 * any of a response arrived and the proof holds, the wrapper dispatches it
 * again instead of failing it, and the caller sees one response.
 *
 * Both of undici's handler interfaces are wrapped as they come: v1
 * (`onConnect`, `onHeaders`, …, `onError`: undici 6 and 7, and Node's
 * fetch before Node 26) and v2 (`onRequestStart`, …, `onResponseError`:
 * undici 7 and 8). The caller's handler sees one request: one
 * `onConnect`/`onRequestStart`, whose abort reaches whichever attempt is
 * running.
 *
 * @packageDocumentation
 */
import { publishReplay } from '../../policy/channel';
import { markReplaySafe, provenUndelivered, type RequestWatch, releaseWatch } from '../../policy/replay';

/** What a guarded dispatcher counts and decides about replays. */
export interface ReplayGuard {
  /** The dispatcher the user created: the owner in channel messages. */
  readonly owner: object;
  /** Whether requests are sent again (`replay` option, default true). */
  readonly replay: boolean;
  /** Requests sent again so far. */
  replayed: number;
}

/** The part of a dispatcher a replay is sent through. */
export interface ReplayTarget {
  dispatch(opts: object, handler: object): boolean;
  readonly closed?: boolean;
  readonly destroyed?: boolean;
}

/**
 * The largest body, in bytes, kept from an async-iterable body (the form
 * `fetch()` gives every body to its dispatcher) so that it can be sent
 * again. A larger one is never replayed; its error is marked instead.
 */
export const MAX_KEPT_BODY = 64 * 1024;

type Chunk = string | Uint8Array;

// An async-iterable body, kept chunk by chunk as undici reads it. Only a
// body read to its end is complete enough to send again.
interface KeptBody {
  readonly chunks: Chunk[];
  size: number;
  ended: boolean;
  tooLarge: boolean;
}

type Body = { readonly kind: 'fixed'; readonly value: unknown } | { readonly kind: 'kept'; readonly kept: KeptBody } | { readonly kind: 'stream' };

function isAsyncIterable(body: unknown): body is AsyncIterable<unknown> {
  return typeof body === 'object' && body !== null && typeof (body as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

function isNodeStream(body: unknown): boolean {
  return typeof body === 'object' && body !== null && typeof (body as { pipe?: unknown }).pipe === 'function' && typeof (body as { on?: unknown }).on === 'function';
}

// Passes every chunk through unchanged, keeping a reference to each one
// (no copy) until MAX_KEPT_BODY is passed.
async function* keep(source: AsyncIterable<unknown>, kept: KeptBody): AsyncGenerator<unknown, void, undefined> {
  for await (const chunk of source) {
    if (!kept.tooLarge) {
      if (typeof chunk === 'string' || chunk instanceof Uint8Array) {
        kept.size += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
        if (kept.size > MAX_KEPT_BODY) kept.tooLarge = true;
        else kept.chunks.push(chunk);
      } else {
        kept.tooLarge = true;
      }
      if (kept.tooLarge) kept.chunks.length = 0;
    }
    yield chunk;
  }
  kept.ended = true;
}

/**
 * Classifies `opts.body` and, for an async iterable, returns the options
 * with the body passed through a keeper. A body undici reads from a Node
 * stream, a Blob or FormData is not kept.
 */
function takeBody(opts: Record<string, unknown>): { opts: Record<string, unknown>; body: Body } {
  const value = opts.body;
  if (value === undefined || value === null || typeof value === 'string' || value instanceof Uint8Array || value instanceof ArrayBuffer) {
    return { opts, body: { kind: 'fixed', value } };
  }
  if (isAsyncIterable(value) && !isNodeStream(value)) {
    const kept: KeptBody = { chunks: [], size: 0, ended: false, tooLarge: false };
    return { opts: { ...opts, body: keep(value, kept) }, body: { kind: 'kept', kept } };
  }
  return { opts, body: { kind: 'stream' } };
}

// The body to send again, or undefined when there is none to send.
function bodyAgain(body: Body): { value: unknown } | undefined {
  if (body.kind === 'fixed') return { value: body.value };
  if (body.kind === 'stream' || !body.kept.ended || body.kept.tooLarge) return undefined;
  const chunks = body.kept.chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c));
  return { value: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks) };
}

/** One request as the caller sees it, across its attempts. */
abstract class Replayable {
  protected watch: RequestWatch | null;
  protected replayed = false;
  // An abort asked for by the caller, applied to whichever attempt runs.
  protected abortReason: unknown = undefined;
  protected aborted = false;

  constructor(
    protected readonly opts: Record<string, unknown>,
    private readonly body: Body,
    watch: RequestWatch,
    private readonly client: ReplayTarget,
    private readonly owner: ReplayTarget,
    private readonly guard: ReplayGuard,
    private readonly replacing: () => void,
  ) {
    this.watch = watch;
  }

  /** A response began: nothing can be replayed any more. */
  protected answered(): void {
    if (this.watch !== null) {
      releaseWatch(this.watch);
      this.watch = null;
    }
  }

  /**
   * On a failure: true when the request went out again (the caller hears
   * nothing of this failure). Otherwise the error goes to the caller,
   * marked when the kernel proved the request undelivered.
   */
  protected replayOn(err: unknown): boolean {
    const watch = this.watch;
    this.watch = null;
    if (watch === null || this.aborted || !provenUndelivered(watch)) return false;
    const again = bodyAgain(this.body);
    const target = [this.client, this.owner].find((d) => d.closed !== true && d.destroyed !== true);
    if (!this.guard.replay || this.replayed || again === undefined || target === undefined) {
      markReplaySafe(err);
      return false;
    }
    this.replayed = true;
    this.guard.replayed += 1;
    const { origin, method, path } = this.opts;
    publishReplay(this.guard.owner, String(origin), String(method), String(path));
    // A fresh connection: this Client's socket is gone, so it connects anew,
    // and the new connection replaces the dead one as after an eviction.
    if (target === this.client) this.replacing();
    target.dispatch({ ...this.opts, body: again.value }, this);
    return true;
  }
}

interface HandlerV1 {
  onConnect?(abort: (reason?: unknown) => void, context?: unknown): unknown;
  onHeaders?(...args: unknown[]): unknown;
  onData?(chunk: unknown): unknown;
  onComplete?(trailers: unknown): unknown;
  onError?(err: unknown): unknown;
  onUpgrade?(...args: unknown[]): unknown;
  onResponseStarted?(): unknown;
  onBodySent?(chunk: unknown): unknown;
  onRequestSent?(): unknown;
}

/** A v1 handler (`onConnect` … `onError`) across attempts. */
class ReplayV1 extends Replayable {
  private abortCurrent: ((reason?: unknown) => void) | null = null;
  private connected = false;

  constructor(
    private readonly handler: HandlerV1,
    ...rest: ConstructorParameters<typeof Replayable>
  ) {
    super(...rest);
  }

  onConnect(abort: (reason?: unknown) => void, context?: unknown): unknown {
    this.abortCurrent = abort;
    if (this.aborted) {
      abort(this.abortReason);
      return undefined;
    }
    if (this.connected) return undefined;
    this.connected = true;
    return this.handler.onConnect?.((reason?: unknown) => {
      this.aborted = true;
      this.abortReason = reason;
      this.abortCurrent?.(reason);
    }, context);
  }

  onResponseStarted(): unknown {
    this.answered();
    return this.handler.onResponseStarted?.();
  }

  onHeaders(...args: unknown[]): unknown {
    this.answered();
    return this.handler.onHeaders?.(...args);
  }

  onData(chunk: unknown): unknown {
    return this.handler.onData?.(chunk);
  }

  onComplete(trailers: unknown): unknown {
    this.answered();
    return this.handler.onComplete?.(trailers);
  }

  onUpgrade(...args: unknown[]): unknown {
    this.answered();
    return this.handler.onUpgrade?.(...args);
  }

  onBodySent(chunk: unknown): unknown {
    return this.handler.onBodySent?.(chunk);
  }

  onRequestSent(): unknown {
    return this.handler.onRequestSent?.();
  }

  onError(err: unknown): unknown {
    if (this.replayOn(err)) return undefined;
    return this.handler.onError?.(err);
  }
}

interface Controller {
  abort(reason?: unknown): void;
  pause(): void;
  resume(): void;
  readonly aborted: boolean;
  readonly paused: boolean;
  readonly reason: unknown;
}

interface HandlerV2 {
  onRequestStart?(controller: Controller, context?: unknown): unknown;
  onRequestUpgrade?(controller: Controller, ...args: unknown[]): unknown;
  onResponseStart?(controller: Controller, ...args: unknown[]): unknown;
  onResponseData?(controller: Controller, chunk: unknown): unknown;
  onResponseEnd?(controller: Controller, trailers: unknown): unknown;
  onResponseError?(controller: Controller, err: unknown): unknown;
  onBodySent?(chunk: unknown): unknown;
  onRequestSent?(): unknown;
  onResponseStarted?(): unknown;
}

/** A v2 handler (`onRequestStart` … `onResponseError`) across attempts. */
class ReplayV2 extends Replayable {
  private current: Controller | null = null;
  private started = false;
  // The controller the caller keeps from onRequestStart: it steers
  // whichever attempt is running. Response callbacks get the real one.
  private readonly steady: Controller;

  constructor(
    private readonly handler: HandlerV2,
    ...rest: ConstructorParameters<typeof Replayable>
  ) {
    super(...rest);
    const self = this;
    this.steady = {
      abort(reason?: unknown): void {
        self.aborted = true;
        self.abortReason = reason;
        self.current?.abort(reason);
      },
      pause(): void {
        self.current?.pause();
      },
      resume(): void {
        self.current?.resume();
      },
      get aborted(): boolean {
        return self.aborted || (self.current?.aborted ?? false);
      },
      get paused(): boolean {
        return self.current?.paused ?? false;
      },
      get reason(): unknown {
        return self.aborted ? self.abortReason : self.current?.reason;
      },
    };
  }

  onRequestStart(controller: Controller, context?: unknown): unknown {
    this.current = controller;
    if (this.aborted) {
      controller.abort(this.abortReason);
      return undefined;
    }
    if (this.started) return undefined;
    this.started = true;
    return this.handler.onRequestStart?.(this.steady, context);
  }

  onRequestUpgrade(controller: Controller, ...args: unknown[]): unknown {
    this.answered();
    return this.handler.onRequestUpgrade?.(controller, ...args);
  }

  onResponseStarted(): unknown {
    this.answered();
    return this.handler.onResponseStarted?.();
  }

  onResponseStart(controller: Controller, ...args: unknown[]): unknown {
    this.answered();
    return this.handler.onResponseStart?.(controller, ...args);
  }

  onResponseData(controller: Controller, chunk: unknown): unknown {
    return this.handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: unknown): unknown {
    this.answered();
    return this.handler.onResponseEnd?.(controller, trailers);
  }

  onBodySent(chunk: unknown): unknown {
    return this.handler.onBodySent?.(chunk);
  }

  onRequestSent(): unknown {
    return this.handler.onRequestSent?.();
  }

  onResponseError(controller: Controller, err: unknown): unknown {
    if (this.replayOn(err)) return undefined;
    return this.handler.onResponseError?.(controller, err);
  }
}

/** Whether `handler` is already a replay wrapper (a request being sent again). */
export function isReplayHandler(handler: object): boolean {
  return handler instanceof Replayable;
}

/**
 * Wraps a request about to go out on a reused connection so that it can be
 * sent again. Returns the options (an async-iterable body passes through a
 * keeper) and the handler to dispatch with.
 *
 * @param opts - The dispatch options.
 * @param handler - The caller's handler, v1 or v2.
 * @param watch - The connection's byte counts taken right before.
 * @param client - The Client the request goes to (the replay's first choice).
 * @param owner - The dispatcher the user created (the replay's fallback).
 * @param guard - Counters and the `replay` option.
 * @param replacing - Called when the replay goes out on `client`, whose
 *   new connection then replaces the dead one.
 */
export function wrapForReplay(
  opts: object,
  handler: object,
  watch: RequestWatch,
  client: ReplayTarget,
  owner: ReplayTarget,
  guard: ReplayGuard,
  replacing: () => void,
): [object, object] {
  const taken = takeBody(opts as Record<string, unknown>);
  const wrapped =
    typeof (handler as HandlerV2).onRequestStart === 'function'
      ? new ReplayV2(handler as HandlerV2, taken.opts, taken.body, watch, client, owner, guard, replacing)
      : new ReplayV1(handler as HandlerV1, taken.opts, taken.body, watch, client, owner, guard, replacing);
  return [taken.opts, wrapped];
}
