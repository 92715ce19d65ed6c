/**
 * Text from the network (remote replies) made fit for one line of a table and for both
 * databases: runs of control characters (NUL, CR, LF, tabs, DEL and the C1 range) and
 * whitespace become one space, and the result is cut at `max` characters (with `…`).
 * PostgreSQL refuses NUL in text; a multi-line reply would break `queue summary` rows.
 */
export function oneLine(text: string, max: number): string {
  const line = text.replace(/[\s\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  if (line.length <= max) return line;
  return `${line.slice(0, Math.max(0, max - 1))}…`;
}
