// knex validating each pooled connection with sockstate before use, next
// to a knex that does not. The server ends both idle sessions
// (idle_session_timeout, 1 s) while this process is busy.
//
//   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres node examples/knex-validate.js
const knex = require('knex');
const { createValidator } = require('sockstate/pool');

const connection = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
  password: process.env.PGPASSWORD,
  database: process.env.PGDATABASE ?? 'postgres',
  options: '-c idle_session_timeout=1000',
};

function busy(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until); // a CPU-bound stretch: the event loop reads nothing
}

async function main() {
  const validate = createValidator();
  const quiet = { warn() {}, error() {}, deprecate() {}, debug() {} };
  const stock = knex({ client: 'pg', connection, pool: { min: 0, max: 1 }, log: quiet });
  const validated = knex({ client: 'pg', connection, pool: { min: 0, max: 1, validate }, log: quiet });

  await Promise.all([stock.raw('SELECT 1'), validated.raw('SELECT 1')]);
  busy(2000); // meanwhile the server ends both sessions

  // Both queries start at once, before the event loop can read anything.
  const dbs = [['stock', stock], ['validated', validated]];
  const results = await Promise.allSettled(dbs.map(([, db]) => db.raw("SELECT 'still here' AS answer")));
  results.forEach((r, i) => {
    const name = dbs[i][0];
    if (r.status === 'fulfilled') console.log(`${name}: ${r.value.rows[0].answer}`);
    else console.log(`${name}: failed: ${r.reason.message}`);
  });
  console.log('validator:', validate.stats);
  await Promise.all([stock.destroy(), validated.destroy()]);
}

main();
