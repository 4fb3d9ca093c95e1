// Requests through an HTTP agent, and what became of each: for the agent
// tests, which run Node's stock agents next to sockstate's.
import * as http from 'node:http';
import type * as https from 'node:https';
import type * as net from 'node:net';
import { connectionState } from '../../src/index';

/** How one request ended. */
export interface Outcome {
  /** The response arrived in full. */
  ok: boolean;
  /** The error's code when it did not. */
  code: string | undefined;
  /** `req.reusedSocket`: Node took the socket from the free pool. */
  reused: boolean;
  /** The client-side port of the socket it went out on. */
  localPort: number | undefined;
  /** The response's status code. */
  status: number | undefined;
  /** The socket it went out on. */
  socket: net.Socket | undefined;
}

/** A request under way, and its outcome; never rejects. */
export interface Started {
  req: http.ClientRequest;
  done: Promise<Outcome>;
}

/** A GET of `/` through `agent` to `target` (host and port, or socketPath, plus TLS options). */
export function request(agent: http.Agent, target: https.RequestOptions, client: typeof http | typeof https = http): Started {
  let localPort: number | undefined;
  let req!: http.ClientRequest;
  const done = new Promise<Outcome>((resolve) => {
    const outcome = (ok: boolean, code: string | undefined, status: number | undefined): Outcome => ({
      ok,
      code,
      reused: req.reusedSocket,
      localPort,
      status,
      socket: req.socket ?? undefined,
    });
    req = client.get({ path: '/', ...target, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(outcome(true, undefined, res.statusCode)));
      res.on('error', (err: NodeJS.ErrnoException) => resolve(outcome(false, err.code, res.statusCode)));
    });
    req.on('socket', (s: net.Socket) => {
      localPort = s.localPort;
      if (localPort === undefined) s.once('connect', () => (localPort = s.localPort));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(outcome(false, err.code, undefined)));
  });
  return { req, done };
}

/** Spins, without letting the event loop run, until the kernel shows the peer's FIN on `socket`. */
export function spinUntilPeerClosed(socket: net.Socket, timeoutMs = 5000): void {
  const deadline = Date.now() + timeoutMs;
  while (connectionState(socket).status !== 'peerClosed') {
    if (Date.now() > deadline) throw new Error(`socket ${socket.localPort ?? ''} never saw the peer's FIN`);
  }
}

/** One turn of the loop: 'free' comes on a nextTick after a response ends, and this puts the socket back in the pool. */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
