/** RFC 3339 times in UTC, as the trust store and the verification time use them. */

const UTC_TIME = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?Z$/;

/**
 * Seconds since 1970-01-01T00:00:00Z of `YYYY-MM-DDTHH:MM:SSZ` with an optional fraction, which
 * is truncated to whole seconds (spec/signing.md §6.1); `undefined` for any other text, a year
 * 0000, or a date or time that does not exist.
 */
export function parseUtcTime(text: string): number | undefined {
  const m = UTC_TIME.exec(text);
  if (m === null || m[1] === "0000") return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // unlike Date.UTC, keeps years 0 to 99 as they are
  date.setUTCHours(hour, minute, second, 0);
  const millis = date.getTime();
  // Out-of-range fields roll over (February 30 becomes March 2); a real date survives.
  if (
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== month - 1 ||
    date.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    return undefined;
  }
  return millis / 1000;
}

/** `seconds` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`. */
export function formatUtcTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}
