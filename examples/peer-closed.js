// The server side of a connection goes away; before Node's event loop has
// run again, the kernel already knows and Node's own flags do not.
const net = require('node:net');
const { connectionState, tcpInfo } = require('sockstate');

const server = net.createServer();
server.listen(0, '127.0.0.1', () => {
  const socket = net.connect(server.address().port, '127.0.0.1');
  server.once('connection', (peer) => {
    setTimeout(() => {
      const { rtt, sndCwnd, bytesAcked } = tcpInfo(socket);
      console.log('before:', connectionState(socket).status, { rtt, sndCwnd, bytesAcked });

      peer.destroy(); // closes the fd now: the FIN is sent before this returns
      console.log('Node says:', socket.readyState, '| sockstate says:', connectionState(socket));
      socket.destroy();
      server.close();
    }, 20);
  });
});
