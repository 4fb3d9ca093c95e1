// Sweep a pool of idle connections in one native call and evict the ones
// the kernel already knows are dead.
const net = require('node:net');
const { probeMany } = require('sockstate');

// A server that closes every third connection after a moment.
let n = 0;
const server = net.createServer((s) => {
  if (n++ % 3 === 2) setTimeout(() => s.end(), 50);
});
server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  const pool = await Promise.all(
    Array.from({ length: 6 }, () => new Promise((resolve) => {
      // allowHalfOpen: Node keeps our end open after the peer's FIN, as a
      // pool that has not read from an idle socket would.
      const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(socket));
    })),
  );
  await new Promise((r) => setTimeout(r, 100));

  const states = probeMany(pool);
  states.forEach((state, i) => {
    if (state.error) console.log(i, 'probe failed:', state.error.code);
    else console.log(i, state.status, state.tcpState);
  });
  const stale = pool.filter((_, i) => states[i].status !== 'open');
  console.log(`evicting ${stale.length} of ${pool.length}`);
  for (const socket of pool) socket.destroy();
  server.close();
});
