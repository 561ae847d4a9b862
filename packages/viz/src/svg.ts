// Small helpers that write SVG as strings (no DOM): escaping, numbers, elements and the colours of
// the box kinds shared by the timeline, the memory bars and their legends.

/** Escapes text and attribute values for XML. */
export function esc(text: string | number): string {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A coordinate with at most 2 decimals. */
export function n(x: number): string {
  return String(Math.round(x * 100) / 100);
}

export type Attrs = Record<string, string | number | undefined>;

function attrs(a: Attrs): string {
  return Object.entries(a).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}="${esc(typeof v === 'number' ? n(v) : v as string)}"`).join('');
}

export function el(name: string, a: Attrs, children = ''): string {
  return children === '' ? `<${name}${attrs(a)}/>` : `<${name}${attrs(a)}>${children}</${name}>`;
}

/** A rectangle with a hover title. */
export function rect(a: Attrs, title?: string): string {
  return title ? el('rect', a, `<title>${esc(title)}</title>`) : el('rect', a);
}

export function text(x: number, y: number, content: string, a: Attrs = {}): string {
  return el('text', { x, y, 'font-size': 11, 'font-family': 'sans-serif', ...a }, esc(content));
}

/** Colours (Tableau 10 palette) of the timeline's box kinds and the memory parts. */
export const COLORS: Record<string, string> = {
  forward: '#4e79a7', backward: '#f28e2b', recompute: '#e15759', p2p: '#76b7b2', offload: '#59a14f',
  first: '#b07aa1', last: '#9c755f', memory: '#333333',
  weights: '#4e79a7', grads: '#f28e2b', optim: '#edc948', activations: '#e15759', transient: '#bab0ac',
};

/** A row of coloured squares with labels, starting at (x, y); returns the SVG and its width. */
export function legend(x: number, y: number, items: Array<[string, string]>): { svg: string; width: number } {
  let cx = x;
  let svg = '';
  for (const [key, label] of items) {
    svg += rect({ x: cx, y: y - 9, width: 10, height: 10, fill: COLORS[key] }) + text(cx + 14, y, label);
    cx += 24 + label.length * 6.2;
  }
  return { svg, width: cx - x };
}
