// TCP metrics for OpenTelemetry: sockstate/otel's instruments on a
// MeterProvider, fed by the connections of a guarded keep-alive HTTP agent.
const http = require('node:http');
const { InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { Agent } = require('sockstate');
const { observeTcpMetrics } = require('sockstate/otel');

const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter() });
const provider = new MeterProvider({ readers: [reader] });
const tracker = observeTcpMetrics({ meterProvider: provider });
const agent = new Agent();
tracker.track(agent, { scope: 'upstream' });

const server = http.createServer((req, res) => res.end('hello\n'));
server.listen(0, '127.0.0.1', async () => {
  const get = () => new Promise((resolve) => http.get({ host: '127.0.0.1', port: server.address().port, agent }, (res) => res.resume().on('end', resolve)));
  await get();
  await get(); // reuses the connection, after a reuse check
  const { resourceMetrics } = await reader.collect();
  const shown = ['sockstate.connection.count', 'sockstate.tcp.rtt', 'sockstate.tcp.io', 'sockstate.reuse_check.count'];
  for (const { descriptor, dataPoints } of resourceMetrics.scopeMetrics[0].metrics) {
    for (const { attributes, value } of shown.includes(descriptor.name) ? dataPoints : []) {
      if (value !== 0) console.log(descriptor.name, ...Object.values(attributes), typeof value === 'number' ? value : `count=${value.count}`);
    }
  }
  tracker.stop();
  agent.destroy();
  server.close();
  await provider.shutdown();
});
