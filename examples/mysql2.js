// A mysql2 pool that never hands out a connection the server has already
// closed, next to a stock pool that does. The server closes both idle
// connections while this process is busy.
//
//   MYSQL_HOST=127.0.0.1 MYSQL_PORT=3306 MYSQL_USER=root node examples/mysql2.js
const mysql = require('mysql2/promise');
const { guardPool, guardStats } = require('sockstate/mysql2');

const options = {
  host: process.env.MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.MYSQL_PORT ?? 3306),
  user: process.env.MYSQL_USER ?? 'root',
  password: process.env.MYSQL_PASSWORD,
  connectionLimit: 1,
};
const stock = mysql.createPool(options);
const guarded = guardPool(mysql.createPool(options));

function busyFor(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until);
}

async function sum(pool) {
  try {
    const [[row]] = await pool.query('SELECT 2 + 2 AS four');
    return row.four;
  } catch (err) {
    return `${err.code} (${err.message})`;
  }
}

async function main() {
  for (const pool of [stock, guarded]) {
    // The server closes this session after 1 s idle.
    await pool.query('SET SESSION wait_timeout = 1');
  }
  await new Promise((resolve) => setTimeout(resolve, 10));
  busyFor(2500); // the server hangs up meanwhile; Node has not noticed
  const [fromStock, fromGuarded] = await Promise.all([sum(stock), sum(guarded)]);
  console.log('stock pool:  ', fromStock);
  console.log('guarded pool:', fromGuarded);
  console.log(guardStats(guarded));
  await Promise.all([stock.end(), guarded.end()]);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
