// Reading Prometheus endpoints in tests: one scrape and one parser of the text exposition format
// for every test that checks live metrics (agent, demo, deploy scripts).
import { expect } from 'vitest';

/** GET http://ADDRESS/metrics (ADDRESS is host:port, or a full URL); the page's text. */
export async function scrapeMetrics(address: string): Promise<string> {
  const res = await fetch(address.startsWith('http') ? address : `http://${address}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** The values of `name` whose labels include `labels` (Prometheus text exposition format). */
export function samples(text: string, name: string, labels: Record<string, string> = {}): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) out.push(Number(m[3]));
  }
  return out;
}
