// Tune keepalive and the user timeout so a vanished peer is noticed in
// seconds, not hours; read the values back from the kernel.
const net = require('node:net');
const { getKeepAlive, getUserTimeout, setKeepAlive, setUserTimeout } = require('sockstate');

const server = net.createServer().listen(0, '127.0.0.1', () => {
  const socket = net.connect(server.address().port, '127.0.0.1', () => {
    // Idle: first probe after 10 s of silence, then every 2 s; after 3
    // unanswered probes the kernel drops the connection (ETIMEDOUT).
    setKeepAlive(socket, { idleMs: 10_000, intervalMs: 2_000, count: 3 });
    // Data in flight: give up after 15 s without an ACK instead of ~15 min.
    setUserTimeout(socket, 15_000);
    console.log(getKeepAlive(socket), getUserTimeout(socket));
    try {
      setKeepAlive(socket, { idleMs: 1500 });
    } catch (err) {
      console.log(err.code, err.message);
    }
    socket.destroy();
    server.close();
  });
});
