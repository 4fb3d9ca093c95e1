// A FIN or RST still in flight when a request leaves cannot be seen
// locally: compose undici's retry interceptor with the guarded Agent, so an
// idempotent request that meets one is sent again.
const http = require('node:http');
const { interceptors, setGlobalDispatcher } = require('undici');
const { Agent } = require('sockstate/undici');

// The first request's connection is dropped as it arrives.
let requests = 0;
const server = http.createServer((req, res) => {
  requests += 1;
  if (requests === 1) req.socket.destroy();
  else res.end('ok');
});

server.listen(0, '127.0.0.1', async () => {
  const agent = new Agent();
  setGlobalDispatcher(agent.compose(interceptors.retry({ minTimeout: 10 })));
  const res = await fetch(`http://127.0.0.1:${server.address().port}/`);
  console.log(res.status, await res.text(), `(the server saw ${requests} requests)`);
  server.close();
  await agent.close();
});
