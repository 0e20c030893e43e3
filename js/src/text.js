// The text policy, as in the Python runtime (runtime/text.py, runtime/preprocessing.py): NFC, `char` or `space`
// tokenization, ids 0/1/2 reserved for pad/start/end, limits checked before any work, unknown symbols an error
// naming them (or mapped to the manifest's `input.unknown_token` when it has one).
import { InputTextError } from './errors.js';

export const NORMALIZATION = 'NFC';
export const TOKENIZATIONS = ['char', 'space'];
export const PAD_ID = 0;
export const START_ID = 1;
export const END_ID = 2;
export const N_SPECIAL = 3;

// Python's str.split(): the characters for which str.isspace() is true.
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// Python's str.isprintable() is false for these categories (and true for the ASCII space).
const NOT_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

/** Number of code points (Python's len) of a string. */
export function codePointLength(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** Throw InputTextError if `text` holds a lone surrogate (it is not Unicode text). */
export function checkUnicode(text) {
  const m = LONE_SURROGATE.exec(text);
  if (m) {
    const col = codePointLength(text.slice(0, m.index)) + 1;
    const cp = m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    throw new InputTextError(`not valid Unicode: lone surrogate U+${cp} at column ${col}`);
  }
}

/** NFC, after checking that the text is valid Unicode. */
export function normalize(text) {
  checkUnicode(text);
  return text.normalize(NORMALIZATION);
}

export function tokenize(text, tokenization) {
  if (tokenization === 'char') return Array.from(text);
  if (tokenization === 'space') return text.split(PY_WHITESPACE).filter((t) => t.length > 0);
  throw new TypeError(`unknown tokenization ${JSON.stringify(tokenization)}; expected one of char, space`);
}

export function detokenize(tokens, tokenization) {
  return tokens.join(tokenization === 'char' ? '' : ' ');
}

/** Python's repr() of a string, for messages that read the same in both runtimes. */
/** Bytes as Python's `bytes.decode('utf-8', 'surrogateescape')` gives them: valid UTF-8 decoded, every other byte
 * as the lone surrogate U+DC80..U+DCFF. One string per byte sequence (so names stay apart) that reads as text. */
export function surrogateEscape(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    if (b < 0x80) { out += String.fromCharCode(b); i++; continue; }
    const [n, first, min] = b >= 0xc2 && b <= 0xdf ? [1, b & 0x1f, 0x80] : b >= 0xe0 && b <= 0xef ? [2, b & 0x0f, 0x800]
      : b >= 0xf0 && b <= 0xf4 ? [3, b & 0x07, 0x10000] : [0, 0, 0];
    let cp = first, ok = n > 0 && i + n < bytes.length;
    for (let k = 1; ok && k <= n; k++) {
      ok = (bytes[i + k] & 0xc0) === 0x80;
      cp = (cp << 6) | (bytes[i + k] & 0x3f);
    }
    if (ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
      out += String.fromCodePoint(cp);
      i += n + 1;
    } else {
      out += String.fromCharCode(0xdc00 + b);
      i++;
    }
  }
  return out;
}

/** Compare two strings by code point, as Python sorts them (JavaScript's own order is by UTF-16 unit). */
export function byCodePoint(a, b) {
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    const x = a.codePointAt(i), y = b.codePointAt(j);
    if (x !== y) return x < y ? -1 : 1;
    i += x > 0xffff ? 2 : 1;
    j += y > 0xffff ? 2 : 1;
  }
  return i < a.length ? 1 : j < b.length ? -1 : 0;
}

export function pyRepr(s) {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    if (ch === '\\' || ch === quote) out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch !== ' ' && NOT_PRINTABLE.test(ch)) {
      out += cp < 0x100 ? '\\x' + cp.toString(16).padStart(2, '0')
        : cp < 0x10000 ? '\\u' + cp.toString(16).padStart(4, '0') : '\\U' + cp.toString(16).padStart(8, '0');
    } else out += ch;
  }
  return out + quote;
}

/** A symbol for an error message: 'é', or U+0000 for a single character that does not print. */
export function describe(symbol) {
  const chars = Array.from(symbol);
  if (chars.length === 1 && symbol !== ' ' && NOT_PRINTABLE.test(symbol)) {
    return 'U+' + symbol.codePointAt(0).toString(16).toUpperCase().padStart(4, '0');
  }
  return pyRepr(symbol);
}

/** One side's vocabulary: tokens[i] is the string of id i. */
export class Vocabulary {
  /** @param {string[]} tokens @param {'char'|'space'} tokenization @param {string|null} [unknownToken] */
  constructor(tokens, tokenization, unknownToken = null) {
    this.tokens = Object.freeze([...tokens]);
    this.tokenization = tokenization;
    this.index = new Map(this.tokens.map((t, i) => [t, i]));
    this.unknownId = unknownToken == null ? null : this.index.get(unknownToken);
    Object.freeze(this);
  }

  get size() { return this.tokens.length; }

  /** Ids of normalized text (no start or end marker). */
  encode(text, { skipUnknown = false } = {}) {
    checkUnicode(text);
    const ids = [];
    const unknown = [];
    for (const token of tokenize(text, this.tokenization)) {
      const i = this.index.get(token);
      if (i === undefined || i < N_SPECIAL) {
        if (this.unknownId != null) { ids.push(this.unknownId); continue; }
        if (!unknown.includes(token)) unknown.push(token);
        continue;
      }
      ids.push(i);
    }
    if (unknown.length && !skipUnknown) {
      const shown = unknown.slice(0, 10).map(describe).join(', ') + (unknown.length > 10 ? ' ...' : '');
      const inner = text.replace(/^[ \t]+|[ \t]+$/g, '');
      const hint = unknown.every((t) => (t === ' ' || t === '\t') && !inner.includes(t))
        ? '; it is whitespace around the text, which the model\'s inputs never had: strip it' : '';
      throw new InputTextError(`input has ${unknown.length} symbol(s) the model never saw: ${shown}${hint}`);
    }
    return ids;
  }

  /** Text of ids, stopping at the end id and leaving out pad and start. */
  decode(ids) {
    const out = [];
    for (const i of ids) {
      if (i === END_ID) break;
      if (i >= N_SPECIAL) out.push(this.tokens[i]);
    }
    return detokenize(out, this.tokenization);
  }
}
