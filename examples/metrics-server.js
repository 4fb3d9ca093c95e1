// TCP metrics for a server with prom-client: which connections sit in which
// state, their RTT, bytes and retransmissions, served on /metrics. Here an
// echo server whose application never closes a connection the client left:
// the CLOSE_WAIT leak the peerClosed count shows.
const http = require('node:http');
const net = require('node:net');
const { once } = require('node:events');
const { Registry } = require('prom-client');
const { collectTcpMetrics } = require('sockstate/prometheus');

const registry = new Registry();
const tracker = collectTcpMetrics({ register: registry });

// allowHalfOpen: after the client's FIN, the server's end stays open until
// the application closes it, which this one forgets to do.
const accepted = [];
const app = net.createServer({ allowHalfOpen: true }, (socket) => {
  accepted.push(socket);
  socket.pipe(socket, { end: false });
});
tracker.track(app, { scope: 'echo' });

const metrics = http.createServer(async (req, res) => {
  res.setHeader('Content-Type', registry.contentType);
  res.end(await registry.metrics());
});

async function main() {
  app.listen(0, '127.0.0.1');
  metrics.listen(0, '127.0.0.1');
  await Promise.all([once(app, 'listening'), once(metrics, 'listening')]);

  const clients = [];
  for (let i = 0; i < 3; i++) {
    const client = net.connect(app.address().port, '127.0.0.1');
    await once(client, 'connect');
    client.write('hello\n');
    await once(client, 'data');
    clients.push(client);
  }
  // The last client leaves; the server's application never closes its end.
  clients[2].end();
  await once(accepted[2], 'end');

  const body = await new Promise((resolve) => {
    http.get(`http://127.0.0.1:${metrics.address().port}/metrics`, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk)).on('end', () => resolve(text));
    });
  });
  for (const line of body.split('\n')) {
    if (/^sockstate_connections\{.*\} [1-9]/.test(line) || /^sockstate_tcp_(bytes_\w+|rtt_seconds_count)\{/.test(line)) {
      console.log(line);
    }
  }

  tracker.stop();
  for (const socket of [...clients, ...accepted]) socket.destroy();
  app.close();
  metrics.close();
}

main();
