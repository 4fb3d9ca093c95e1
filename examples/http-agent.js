// A keep-alive HTTP agent that never hands a request a socket the kernel
// already knows is dead. The server runs in a child process.
const { spawn } = require('node:child_process');
const http = require('node:http');
const { Agent } = require('sockstate');

if (process.argv[2] === 'server') {
  // Drops each connection 100 ms after a response, although its Keep-Alive
  // header promises 5 s, as a proxy or load balancer might.
  const server = http.createServer((req, res) => {
    res.end('ok', () => setTimeout(() => req.socket.destroy(), 100));
  });
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
  process.stdin.on('end', () => process.exit()).resume();
} else {
  const child = spawn(process.execPath, [__filename, 'server'], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdout.once('data', (line) => main(Number(line)).finally(() => child.stdin.end()));
}

const agent = new Agent(); // keepAlive is on by default

function get(port, retried = false) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, agent }, (res) => {
      res.resume().on('end', () => resolve(`${res.statusCode}, reused socket: ${req.reusedSocket}`));
    });
    req.on('error', (err) => {
      // A FIN or RST still in flight when the request left cannot be seen
      // locally: retry idempotent requests that failed on a reused socket.
      if (req.reusedSocket && !retried && err.code === 'ECONNRESET') resolve(get(port, true));
      else reject(err);
    });
  });
}

async function main(port) {
  console.log(await get(port));
  await new Promise((resolve) => setImmediate(resolve)); // the socket returns to the pool
  const until = Date.now() + 250;
  while (Date.now() < until); // a busy event loop: the server closes the socket meanwhile
  console.log(await get(port));
  console.log('stale sockets destroyed:', agent.staleSocketsDestroyed);
  agent.destroy();
}
