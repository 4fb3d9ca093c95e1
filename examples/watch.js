// Watch one connection: samples of tcp_info, state changes, and the end.
const net = require('node:net');
const { watch } = require('sockstate');

const server = net.createServer((s) => setTimeout(() => s.end(), 300));
server.listen(0, '127.0.0.1', () => {
  const socket = net.connect(server.address().port, '127.0.0.1');
  socket.on('end', () => socket.end());
  socket.once('connect', () => {
    const watcher = watch(socket, { intervalMs: 100 });
    console.log('start', watcher.state.status, watcher.state.tcpState);
    watcher.on('sample', (info) => console.log('sample rtt', info.rtt, 'µs, cwnd', info.sndCwnd));
    watcher.on('change', (prev, cur) => console.log('change', prev.status, '->', cur.status, cur.tcpState));
    watcher.on('end', ({ reason, state }) => {
      console.log('end', reason, state.status);
      server.close();
    });
  });
});
