// maxSockets reached: a request waits, and Node hands it the socket of the
// request before it the moment that one ends. Node's stock agent next to
// sockstate's, against a server (in a child process) that closes each
// connection right after its answer, while the event loop is busy.
const { spawn } = require('node:child_process');
const http = require('node:http');
const { Agent, connectionState } = require('sockstate');

if (process.argv[2] === 'server') {
  // Answers without `Connection: close`, then closes anyway.
  const server = http.createServer((req, res) => res.end('ok', () => req.socket.end()));
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
  process.stdin.on('end', () => process.exit()).resume();
} else {
  const child = spawn(process.execPath, [__filename, 'server'], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdout.once('data', (line) => main(Number(line)).finally(() => child.stdin.end()));
}

function get(port, agent) {
  let req;
  const done = new Promise((resolve) => {
    req = http.get({ host: '127.0.0.1', port, agent }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode));
    });
    req.on('error', (err) => resolve(err.code));
  });
  return { req, done };
}

async function twoAtOnce(port, agent) {
  const first = get(port, agent);
  const second = get(port, agent); // queued: maxSockets is 1
  first.req.once('finish', () => {
    // A busy event loop, and the server's FIN arrives meanwhile.
    const until = Date.now() + 300;
    while (Date.now() < until || connectionState(first.req.socket).status !== 'peerClosed');
  });
  const results = [await first.done, await second.done];
  agent.destroy();
  return results.join(', ');
}

async function main(port) {
  console.log(`Node ${process.version}`);
  console.log('http.Agent:     ', await twoAtOnce(port, new http.Agent({ keepAlive: true, maxSockets: 1 })));
  const agent = new Agent({ maxSockets: 1 });
  console.log('sockstate Agent:', await twoAtOnce(port, agent), `(stale sockets destroyed: ${agent.staleSocketsDestroyed})`);
}
