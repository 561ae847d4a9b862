// Plain-text tables for people: columns padded to their widest cell, numbers right-aligned.
export interface Column<Row> {
  header: string;
  value: (row: Row) => string | number;
  align?: 'left' | 'right';
}

export function renderTable<Row>(rows: Row[], columns: Column<Row>[]): string {
  const cells = rows.map((r) => columns.map((c) => String(c.value(r))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i].length)));
  const alignOf = (i: number): 'left' | 'right' => {
    const explicit = columns[i].align;
    if (explicit) return explicit;
    return rows.length > 0 && typeof columns[i].value(rows[0]) === 'number' ? 'right' : 'left';
  };
  const pad = (text: string, i: number): string => (alignOf(i) === 'right' ? text.padStart(widths[i]) : text.padEnd(widths[i]));
  const line = (row: string[]): string => row.map((t, i) => pad(t, i)).join('  ').trimEnd();
  return [line(columns.map((c) => c.header)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}
