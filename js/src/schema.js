// A small JSON Schema (draft 2020-12) checker for the keywords manifest.schema.json uses. The schema itself is
// written by the Python side (`python -m seq2seq_edge.schema`), so both runtimes refuse the same manifests.
// Returns every problem at once, each as "<JSON pointer>: <what is wrong>".

const KNOWN = new Set(['$schema', '$id', '$defs', '$ref', 'title', 'description', 'type', 'enum', 'const',
  'required', 'properties', 'additionalProperties', 'items', 'prefixItems', 'minItems', 'maxItems', 'minimum',
  'maximum', 'minLength', 'maxLength', 'pattern', 'not', 'allOf', 'if', 'then', 'else']);

function typeOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function short(v) {
  let s;
  try { s = JSON.stringify(v); } catch { s = String(v); }
  if (s === undefined) s = String(v);
  return s.length <= 60 ? s : s.slice(0, 57) + '...';
}

function deepEqual(a, b) {
  if (a === b) return true;
  if (typeOf(a) !== typeOf(b) || typeof a !== 'object' || a === null) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => deepEqual(a[k], b[k]));
}

function codePoints(s) { return Array.from(s).length; }

/** Compile once: checks that the schema uses only keywords this checker knows. */
export function compileSchema(root) {
  const patterns = new Map();
  const walk = (node) => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) { node.forEach(walk); return; }
    for (const [k, v] of Object.entries(node)) {
      if (k.startsWith('x-')) continue;
      if (!KNOWN.has(k) && !(k === 'properties' || k === '$defs')) throw new Error(`schema keyword ${k} is not supported`);
      if (k === 'pattern') patterns.set(v, new RegExp(v, 'u'));
      if (k === 'properties' || k === '$defs') Object.values(v).forEach(walk);
      else if (k !== 'const' && k !== 'enum') walk(v);
    }
  };
  walk(root);
  const resolve = (ref) => {
    if (!ref.startsWith('#/')) throw new Error(`schema $ref ${ref} is not local`);
    return ref.slice(2).split('/').reduce((n, key) => n[key], root);
  };
  const check = (schema, value, path, out) => {
    if (schema.$ref) return check(resolve(schema.$ref), value, path, out);
    const at = path || '/';
    const before = out.length;
    if (schema.type) {
      const t = typeOf(value);
      const ok = schema.type === t || (schema.type === 'number' && t === 'integer');
      if (!ok) { out.push(`${at}: must be ${/^[aeiou]/.test(schema.type) ? 'an' : 'a'} ${schema.type}, got ${short(value)}`); return out; }
    }
    if ('const' in schema && !deepEqual(schema.const, value)) out.push(`${at}: must be ${short(schema.const)}, got ${short(value)}`);
    if (schema.enum && !schema.enum.some((e) => deepEqual(e, value))) {
      out.push(`${at}: must be one of ${short(schema.enum)}, got ${short(value)}`);
    }
    const t = typeOf(value);
    if (t === 'integer' || t === 'number') {
      if (schema.minimum !== undefined && value < schema.minimum) out.push(`${at}: must be at least ${schema.minimum}, got ${value}`);
      if (schema.maximum !== undefined && value > schema.maximum) out.push(`${at}: must be at most ${schema.maximum}, got ${value}`);
    }
    if (t === 'string') {
      const n = schema.minLength !== undefined || schema.maxLength !== undefined ? codePoints(value) : 0;
      if (schema.minLength !== undefined && n < schema.minLength) out.push(`${at}: must have at least ${schema.minLength} characters`);
      if (schema.maxLength !== undefined && n > schema.maxLength) out.push(`${at}: must have at most ${schema.maxLength} characters`);
      if (schema.pattern && !patterns.get(schema.pattern).test(value)) out.push(`${at}: ${short(value)} does not match ${schema.pattern}`);
    }
    if (t === 'array') {
      if (schema.minItems !== undefined && value.length < schema.minItems) out.push(`${at}: must have at least ${schema.minItems} entries, has ${value.length}`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) { out.push(`${at}: must have at most ${schema.maxItems} entries, has ${value.length}`); return out; }
      const prefix = schema.prefixItems || [];
      prefix.forEach((s, i) => { if (i < value.length) check(s, value[i], `${path}/${i}`, out); });
      if (schema.items) {
        for (let i = prefix.length; i < value.length && out.length - before < 20; i++) check(schema.items, value[i], `${path}/${i}`, out);
      }
    }
    if (t === 'object') {
      for (const key of schema.required || []) if (!(key in value)) out.push(`${at}: missing key '${key}'`);
      const props = schema.properties || {};
      for (const [key, v] of Object.entries(value)) {
        if (key in props) check(props[key], v, `${path}/${key}`, out);
        else if (schema.additionalProperties === false) out.push(`${at}: unexpected key '${key}'`);
        else if (typeof schema.additionalProperties === 'object') check(schema.additionalProperties, v, `${path}/${key}`, out);
      }
    }
    if (schema.not && check(schema.not, value, path, []).length === 0) {
      out.push(schema.not.required ? `${at}: must not have ${schema.not.required.map((k) => `'${k}'`).join(', ')}`
        : `${at}: must not be ${schema.not.enum ? `one of ${short(schema.not.enum)}` : short(schema.not.const)}, got ${short(value)}`);
    }
    for (const s of schema.allOf || []) check(s, value, path, out);
    if (schema.if) {
      const branch = check(schema.if, value, path, []).length === 0 ? schema.then : schema.else;
      if (branch) check(branch, value, path, out);
    }
    return out;
  };
  return (value) => check(root, value, '', []);
}
