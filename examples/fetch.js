// fetch() on a keep-alive connection the server has already closed, with
// and without sockstate/undici. The server runs in a child process.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');

if (process.argv[2] === 'server') {
  // Keeps connections alive without a Keep-Alive header, and drops the
  // idle ones when told to on stdin, as its idle timeout would.
  const idle = new Set();
  const server = net.createServer((conn) => {
    conn.on('error', () => {});
    conn.on('close', () => idle.delete(conn));
    conn.on('data', () => {
      // A request that arrives after the server dropped the connection
      // finds it closed: the client gets "other side closed".
      if (conn.writableEnded) return;
      conn.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      idle.add(conn);
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
  process.stdin.on('data', () => {
    for (const conn of idle) conn.end();
  });
  process.stdin.on('end', () => process.exit());
} else {
  const child = spawn(process.execPath, [__filename, 'server'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const dropIdle = () => child.stdin.write('drop\n');
  child.stdout.once('data', (line) => main(`http://127.0.0.1:${Number(line)}/`, dropIdle).finally(() => child.stdin.end()));
}

// Two requests; the second goes out from an I/O callback after the event
// loop was busy for 300 ms, while the server dropped the idle connection.
async function twice(url, dropIdle, init) {
  await (await fetch(url, init)).text();
  return new Promise((resolve) => {
    fs.stat(__filename, () => {
      dropIdle();
      const until = Date.now() + 300;
      while (Date.now() < until); // a busy event loop
      fetch(url, init).then(
        async (res) => resolve(`${res.status} ${await res.text()}`),
        (err) => resolve(`${err.cause.code} (${err.cause.message})`),
      );
    });
  });
}

async function main(url, dropIdle) {
  console.log("Node's fetch:", await twice(url, dropIdle));

  // Loads undici: from here on it is the peer sockstate/undici builds on.
  const { setGlobalDispatcher } = require('undici');
  const { Agent } = require('sockstate/undici');

  const agent = new Agent();
  console.log('fetch with { dispatcher: agent }:', await twice(url, dropIdle, { dispatcher: agent }));

  const global = new Agent();
  setGlobalDispatcher(global);
  console.log('fetch after setGlobalDispatcher(new Agent()):', await twice(url, dropIdle));

  console.log('stale sockets destroyed:', agent.staleSocketsDestroyed, global.staleSocketsDestroyed);
  await Promise.all([agent.close(), global.close()]);
}
