// A pg pool that never hands out a client whose session the server has
// already ended, next to a stock pool that does. The server ends both idle
// sessions (idle_session_timeout, 1 s) while this process is busy.
//
//   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres node examples/pg-guard.js
const pg = require('pg');
const { guardPool, guardStats } = require('sockstate/pg');

// pg reads PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE itself.
const config = { max: 1, options: '-c idle_session_timeout=1000' };

function busy(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until); // a CPU-bound stretch: the event loop reads nothing
}

async function main() {
  const stock = new pg.Pool(config);
  const guarded = guardPool(new pg.Pool(config));
  for (const pool of [stock, guarded]) pool.on('error', () => {}); // errors of idle clients

  await Promise.all([stock.query('SELECT 1'), guarded.query('SELECT 1')]);
  busy(2000); // meanwhile the server ends both sessions: a FATAL, then its FIN

  // Both queries start at once, before the event loop can read anything.
  const pools = [['stock', stock], ['guarded', guarded]];
  const results = await Promise.allSettled(pools.map(([, pool]) => pool.query("SELECT 'still here' AS answer")));
  results.forEach((r, i) => {
    const name = pools[i][0];
    if (r.status === 'fulfilled') console.log(`${name}: ${r.value.rows[0].answer}`);
    else console.log(`${name}: failed: ${r.reason.message} (${r.reason.code})`);
  });
  const { checked, rejected, rejectedByReason } = guardStats(guarded);
  console.log(`guard: checked ${checked}, rejected ${rejected}`, rejectedByReason);
  await Promise.all([stock.end(), guarded.end()]);
}

main();
