// generic-pool validating each pg client with sockstate before lending it,
// next to a generic-pool that does not. The server ends both idle sessions
// (idle_session_timeout, 1 s) while this process is busy.
//
//   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres node examples/generic-pool.js
const { createPool } = require('generic-pool');
const pg = require('pg');
const { createValidator } = require('sockstate/pool');

// pg reads PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE itself.
const config = { options: '-c idle_session_timeout=1000' };

const factory = {
  async create() {
    const client = new pg.Client(config);
    // A pooled client whose session ends while it is idle emits 'error';
    // without a listener that would end the process.
    client.on('error', () => {});
    await client.connect();
    return client;
  },
  destroy: (client) => client.end(),
};

function busy(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until); // a CPU-bound stretch: the event loop reads nothing
}

async function main() {
  const validate = createValidator();
  const stock = createPool(factory, { max: 1 });
  const validated = createPool(
    { ...factory, validate: async (client) => validate(client) }, // the check itself is synchronous
    { max: 1, testOnBorrow: true },
  );
  const pools = [['stock', stock], ['validated', validated]];

  await Promise.all(pools.map(([, pool]) => pool.use((client) => client.query('SELECT 1'))));
  busy(2000); // meanwhile the server ends both sessions

  // Both queries start at once, before the event loop can read anything.
  const results = await Promise.allSettled(
    pools.map(([, pool]) => pool.use((client) => client.query("SELECT 'still here' AS answer"))),
  );
  results.forEach((r, i) => {
    const name = pools[i][0];
    if (r.status === 'fulfilled') console.log(`${name}: ${r.value.rows[0].answer}`);
    else console.log(`${name}: failed: ${r.reason.message}`);
  });
  console.log('validator:', validate.stats);
  for (const [, pool] of pools) {
    await pool.drain();
    await pool.clear();
  }
}

main();
