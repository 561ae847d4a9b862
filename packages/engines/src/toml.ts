// The TOML subset torchtitan's train configs use: [table] and [a.b] headers, `key = value` with strings,
// integers, floats, booleans and (nested) arrays of those, and # comments. Written from the TOML 1.0 spec.
export type TomlValue = string | number | boolean | TomlValue[];
export type TomlTable = { [key: string]: TomlValue | TomlTable };

function formatValue(v: TomlValue): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return `[${v.map(formatValue).join(', ')}]`;
}

/** Writes sections in order; `comments` puts `# ...` lines above a key (key path `section.key`). */
export function writeToml(sections: [name: string, entries: [key: string, value: TomlValue, comment?: string][]][]): string {
  return sections.map(([name, entries]) => `[${name}]\n` + entries.map(([k, v, c]) =>
    (c ? c.split('\n').map((l) => `# ${l}\n`).join('') : '') + `${k} = ${formatValue(v)}\n`).join('')).join('\n');
}

class Reader {
  pos = 0;
  constructor(readonly text: string, readonly line: number) {}
  ws(): void {
    while (this.pos < this.text.length && /[ \t\r\n]/.test(this.text[this.pos])) this.pos++;
    if (this.text[this.pos] === '#') {
      while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.pos++;
      this.ws();
    }
  }
  fail(msg: string): never {
    throw new SyntaxError(`TOML line ${this.line}: ${msg}`);
  }
  value(): TomlValue {
    this.ws();
    const c = this.text[this.pos];
    if (c === '"') {
      let out = '';
      this.pos++;
      while (this.pos < this.text.length && this.text[this.pos] !== '"') {
        if (this.text[this.pos] === '\\') {
          const e = this.text[this.pos + 1];
          out += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          this.pos += 2;
        } else out += this.text[this.pos++];
      }
      if (this.text[this.pos] !== '"') this.fail('unterminated string');
      this.pos++;
      return out;
    }
    if (c === "'") {
      const end = this.text.indexOf("'", this.pos + 1);
      if (end < 0) this.fail('unterminated string');
      const s = this.text.slice(this.pos + 1, end);
      this.pos = end + 1;
      return s;
    }
    if (c === '[') {
      this.pos++;
      const arr: TomlValue[] = [];
      for (;;) {
        this.ws();
        if (this.text[this.pos] === ']') {
          this.pos++;
          return arr;
        }
        arr.push(this.value());
        this.ws();
        if (this.text[this.pos] === ',') this.pos++;
        else if (this.text[this.pos] !== ']') this.fail('expected , or ] in an array');
      }
    }
    const m = /^(true|false|[+-]?[0-9][0-9_]*(\.[0-9_]+)?([eE][+-]?[0-9]+)?)/.exec(this.text.slice(this.pos));
    if (!m) this.fail(`unsupported value at "${this.text.slice(this.pos, this.pos + 12)}"`);
    this.pos += m[0].length;
    if (m[0] === 'true' || m[0] === 'false') return m[0] === 'true';
    return Number(m[0].replace(/_/g, ''));
  }
}

/** Parses the subset; throws a SyntaxError with the line number for anything else. */
export function parseToml(text: string): TomlTable {
  const root: TomlTable = {};
  let table = root;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const header = /^\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$/.exec(raw);
    if (header) {
      table = root;
      for (const part of header[1].split('.')) {
        const next = table[part];
        if (next === undefined) table[part] = {};
        else if (typeof next !== 'object' || Array.isArray(next)) throw new SyntaxError(`TOML line ${i + 1}: ${part} is not a table`);
        table = table[part] as TomlTable;
      }
      continue;
    }
    const kv = /^([A-Za-z0-9_-]+)\s*=\s*/.exec(raw);
    if (!kv) throw new SyntaxError(`TOML line ${i + 1}: expected [table] or key = value`);
    // A value may span lines (arrays): read from here to the end of the text and stop where it ends.
    const rest = [raw.slice(kv[0].length), ...lines.slice(i + 1)].join('\n');
    const r = new Reader(rest, i + 1);
    table[kv[1]] = r.value();
    const consumed = rest.slice(0, r.pos);
    i += consumed.split('\n').length - 1;
    const tail = rest.slice(r.pos).split('\n')[0].trim();
    if (tail !== '' && !tail.startsWith('#')) throw new SyntaxError(`TOML line ${i + 1}: unexpected "${tail}" after the value`);
  }
  return root;
}
