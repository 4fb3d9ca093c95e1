// fetch() on a keep-alive connection the server has already closed, with
// and without sockstate/undici. The server runs in a child process.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');

if (process.argv[2] === 'server') {
  // Keeps connections alive without a Keep-Alive header and drops each one
  // 100 ms after a response, as a proxy or load balancer might.
  const server = net.createServer((conn) => {
    let timer;
    conn.on('error', () => {});
    conn.on('data', () => {
      // A request that arrives after the server dropped the connection
      // finds it closed: the client gets "other side closed".
      if (conn.writableEnded) return;
      clearTimeout(timer);
      conn.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      timer = setTimeout(() => conn.end(), 100);
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
  process.stdin.on('end', () => process.exit()).resume();
} else {
  const child = spawn(process.execPath, [__filename, 'server'], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdout.once('data', (line) => main(`http://127.0.0.1:${Number(line)}/`).finally(() => child.stdin.end()));
}

// Two requests; the second goes out from an I/O callback after the event
// loop was busy for 300 ms, long enough for the server to drop the idle
// connection meanwhile.
async function twice(url, init) {
  await (await fetch(url, init)).text();
  return new Promise((resolve) => {
    fs.stat(__filename, () => {
      const until = Date.now() + 300;
      while (Date.now() < until); // a busy event loop
      fetch(url, init).then(
        async (res) => resolve(`${res.status} ${await res.text()}`),
        (err) => resolve(`${err.cause.code} (${err.cause.message})`),
      );
    });
  });
}

async function main(url) {
  console.log("Node's fetch:", await twice(url));

  // Loads undici: from here on it is the peer sockstate/undici builds on.
  const { setGlobalDispatcher } = require('undici');
  const { Agent } = require('sockstate/undici');

  const agent = new Agent();
  console.log('fetch with { dispatcher: agent }:', await twice(url, { dispatcher: agent }));

  const global = new Agent();
  setGlobalDispatcher(global);
  console.log('fetch after setGlobalDispatcher(new Agent()):', await twice(url));

  console.log('stale sockets destroyed:', agent.staleSocketsDestroyed, global.staleSocketsDestroyed);
  await Promise.all([agent.close(), global.close()]);
}
