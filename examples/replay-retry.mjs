// Retrying what the kernel proves the server never received, whatever the
// method: got's retry options and axios-retry's retryCondition, each with
// sockstate's Agent. isReplaySafe(err) is true only for such a request;
// any other failure is retried only for an idempotent method.
//   node examples/replay-retry.mjs
import http from 'node:http';
import axios from 'axios';
import axiosRetry from 'axios-retry';
import got from 'got';
import { Agent, isReplaySafe } from 'sockstate';

export const agent = new Agent();

// got: POST and PATCH are retried too, but only when replay-safe.
const notIdempotent = ['POST', 'PATCH'];
export const gotClient = got.extend({
  agent: { http: agent },
  retry: {
    limit: 2,
    methods: [...got.defaults.options.retry.methods, ...notIdempotent],
    calculateDelay: ({ error, computedValue }) =>
      isReplaySafe(error) ? 1 : notIdempotent.includes(error.options.method) ? 0 : computedValue,
  },
});

// axios-retry: idempotent requests on network errors and 5xx, or replay-safe.
// (Its default, isNetworkOrIdempotentRequestError, retries a POST on any
// network error, though the server may have read it.)
export const axiosClient = axios.create({ httpAgent: agent });
axiosRetry(axiosClient, {
  retries: 2,
  retryCondition: (error) => isReplaySafe(error) || axiosRetry.isIdempotentRequestError(error),
});

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = http.createServer((req, res) => req.resume().on('end', () => res.end(`${req.method} ok\n`)));
  server.listen(0, '127.0.0.1', async () => {
    const url = `http://127.0.0.1:${server.address().port}/`;
    console.log('got:', (await gotClient.post(url, { body: 'hello' }).text()).trim());
    console.log('axios:', (await axiosClient.post(url, 'hello')).data.trim());
    agent.destroy();
    server.close();
  });
}
