// A plain HTTP endpoint for Prometheus to scrape (`--metrics-listen HOST:PORT`): GET /metrics answers
// with what `produce` renders (the text exposition format, prom-client's registry.metrics()); every
// other path is 404. No token: Prometheus scrapers do not send ours, so bind it to an address only
// the monitoring network reaches (docs/operations.md).
import * as http from 'node:http';

export interface MetricsPage {
  contentType: string;
  body: string;
}

export interface MetricsEndpoint {
  /** `host:port` as bound. */
  address: string;
  port: number;
  close(): Promise<void>;
}

/** Splits `HOST:PORT` (`[::1]:9464` for IPv6); throws naming the flag. */
export function splitHostPort(listen: string, flag = '--metrics-listen'): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = i > 0 ? listen.slice(0, i).replace(/^\[|\]$/g, '') : '';
  const port = i > 0 ? Number(listen.slice(i + 1)) : NaN;
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${flag}: got "${listen}"; expected HOST:PORT with a port in [0, 65535], e.g. 0.0.0.0:9464`);
  }
  return { host, port };
}

export async function serveMetrics(listen: string, produce: () => Promise<MetricsPage>): Promise<MetricsEndpoint> {
  const { host, port } = splitHostPort(listen);
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0];
    if (url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    produce().then((page) => {
      res.writeHead(200, { 'content-type': page.contentType }).end(req.method === 'HEAD' ? undefined : page.body);
    }, (err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot render the metrics: ${(err as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`--metrics-listen: cannot listen on ${listen}: ${err.message}`)));
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as { port: number }).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    address: `${shown}:${bound}`,
    port: bound,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
