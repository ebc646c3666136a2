/** POSIX-shell quoting, used to hand an argv to the guest's /bin/sh unchanged. */

/** Quotes one word so that `sh` reads it back byte for byte. */
export function shQuote(word: string): string {
  if (word.includes('\0')) throw new TypeError('a shell word cannot contain a NUL byte');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function shJoin(argv: readonly string[]): string {
  return argv.map(shQuote).join(' ');
}

/** `export NAME=value` lines; names must be valid shell identifiers. */
export function shExports(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new TypeError(`not a valid environment variable name: ${k}`);
      return `export ${k}=${shQuote(v)}\n`;
    })
    .join('');
}
