import * as http from 'node:http';
import { describe, expect, it } from 'vitest';
import { Agent, HttpsAgent } from '../src/integrations/agent';
import { listen } from './helpers/sockets';

// Two packages export an Agent: the node:http one, given to fetch(), must
// say which one fetch() takes instead of `agent.dispatch is not a function`.
describe("sockstate's node:http agents are no undici dispatchers", () => {
  it.each([
    ['Agent', () => new Agent()],
    ['HttpsAgent', () => new HttpsAgent()],
  ] as const)('fetch() with an %s as dispatcher fails with ERR_SOCKSTATE_NOT_A_DISPATCHER as the cause, and the server sees nothing', async (_name, make) => {
    let requests = 0;
    const server = http.createServer((_req, res) => {
      requests += 1;
      res.end('ok');
    });
    const port = await listen(server);
    const agent = make();
    try {
      const err = await fetch(`http://127.0.0.1:${port}/`, { dispatcher: agent } as unknown as RequestInit).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TypeError);
      expect((err as { cause?: unknown }).cause).toMatchObject({
        name: 'SockstateError',
        code: 'ERR_SOCKSTATE_NOT_A_DISPATCHER',
        message:
          "sockstate's Agent and HttpsAgent are node:http agents (for http.request() and http.globalAgent); fetch() and undici take the Agent of 'sockstate/undici'",
      });
      expect(requests).toBe(0);
    } finally {
      agent.destroy();
      server.close();
    }
  });
});
