/**
 * "Blank" as spec/signing.md §8 defines it: empty, or only white space from its list, which is
 * Python's `str.isspace` (ECMA-262's `\s` differs: it lacks U+001C–U+001F and U+0085 and adds
 * U+FEFF). Used for provenance (§8) and trust-store names (§6.1).
 */
const BLANK = /^[\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/u;

/** Whether `text` is empty or made only of the white space signing.md §8 lists. */
export function isBlank(text: string): boolean {
  return BLANK.test(text);
}
