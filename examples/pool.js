// A minimal connection pool that validates on checkout and tells a stale
// connection from a server that said goodbye. The server is a child process.
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const net = require('node:net');
const { checkReusable } = require('sockstate');

if (process.argv[2] === 'server') {
  // Answers each line, and says goodbye to a connection idle for 100 ms.
  const server = net.createServer((conn) => {
    let idle;
    conn.on('data', (d) => {
      clearTimeout(idle);
      conn.write(`echo ${d}`);
      idle = setTimeout(() => conn.end('bye: idle timeout\n'), 100);
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
  process.stdin.on('end', () => process.exit()).resume();
} else {
  const child = spawn(process.execPath, [__filename, 'server'], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdout.once('data', (line) => main(Number(line)).finally(() => child.stdin.end()));
}

class Pool {
  constructor(port) {
    this.port = port;
    this.idle = [];
  }

  async acquire() {
    while (this.idle.length > 0) {
      const socket = this.idle.pop();
      const { reusable, reason, state } = checkReusable(socket);
      if (reusable) return socket;
      if (reason === 'dataPending') {
        console.log(`discarding: the server said ${JSON.stringify(socket.read()?.toString())} (${state.status})`);
      } else {
        console.log(`discarding a stale connection (${state.status})`);
      }
      socket.destroy();
    }
    const socket = net.connect(this.port, '127.0.0.1');
    await once(socket, 'connect');
    return socket;
  }

  release(socket) {
    socket.pause(); // what arrives while idle stays unread, for the check to see
    this.idle.push(socket);
  }
}

async function request(pool, text) {
  const socket = await pool.acquire();
  socket.write(`${text}\n`);
  socket.resume();
  const [reply] = await once(socket, 'data');
  pool.release(socket);
  return reply.toString().trim();
}

async function main(port) {
  const pool = new Pool(port);
  console.log(await request(pool, 'one'));
  console.log(await request(pool, 'two'));
  await new Promise((resolve) => setTimeout(resolve, 300));
  console.log(await request(pool, 'three'));
  for (const s of pool.idle) s.destroy();
}
