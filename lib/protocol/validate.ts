/**
 * Checks a request's `arguments` against a command's declared members, the way QEMU's
 * generated unmarshallers (the QObject input visitor) do: members in schema order, the
 * first missing or mistyped one wins, extra keys are reported only after all declared
 * members, with qemu-ga's exact texts. Produces plain objects for handlers.
 */
import { QgaError } from '../errors';
import type { Member, TypeSpec } from '../schema';
import { RawString, JsonFloat, type JsonValue } from './values';
import { qdictOrder } from './encoder';

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

type Obj = Map<string, JsonValue>;

export function validateArguments(members: readonly Member[], args: Obj): Record<string, unknown> {
  return visitStruct(members, args, '');
}

function memberName(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

function visitStruct(members: readonly Member[], obj: Obj, prefix: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of members) {
    const name = memberName(prefix, m.name);
    if (!obj.has(m.name)) {
      if (m.optional) continue;
      throw new QgaError(`Parameter '${name}' is missing`);
    }
    out[m.name] = visit(m.type, obj.get(m.name) as JsonValue, name);
  }
  if (obj.size > Object.keys(out).length) {
    const known = new Set(members.map((m) => m.name));
    for (const key of qdictOrder([...obj.keys()])) {
      if (!known.has(key)) throw new QgaError(`Parameter '${memberName(prefix, key)}' is unexpected`);
    }
  }
  return out;
}

function typeError(name: string, expected: string): QgaError {
  return new QgaError(`Invalid parameter type for '${name}', expected: ${expected}`);
}

function isInteger(v: JsonValue): v is number | bigint {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
}

function visit(t: TypeSpec, v: JsonValue, name: string): unknown {
  switch (t.kind) {
    case 'any':
      return v;
    case 'int':
      if (typeof v === 'number') return v;
      if (typeof v === 'bigint' && v >= INT64_MIN && v <= INT64_MAX) return v;
      throw typeError(name, 'integer');
    case 'uint64': {
      // Negative int64 values are accepted and wrap, as QEMU does for compatibility.
      if (!isInteger(v)) throw new QgaError(`Parameter '${name}' expects uint64`);
      let big = BigInt(v);
      if (big > UINT64_MAX) throw new QgaError(`Parameter '${name}' expects uint64`);
      if (big < 0n) big += 1n << 64n;
      return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    case 'number':
      if (typeof v === 'number') return v;
      if (typeof v === 'bigint') return Number(v);
      if (v instanceof JsonFloat) return v.value;
      throw typeError(name, 'number');
    case 'str':
      if (typeof v === 'string' || v instanceof RawString) return v;
      throw typeError(name, 'string');
    case 'bool':
      if (typeof v === 'boolean') return v;
      throw typeError(name, 'boolean');
    case 'enum': {
      if (typeof v !== 'string' && !(v instanceof RawString)) throw typeError(name, 'string');
      const s = v.toString();
      if (!t.values.includes(s)) throw new QgaError(`Parameter '${name}' does not accept value '${s}'`);
      return s;
    }
    case 'list': {
      if (!Array.isArray(v)) throw typeError(name, 'array');
      return v.map((e, i) => visit(t.of, e, `${name}[${i}]`));
    }
    case 'struct':
      if (!(v instanceof Map)) throw typeError(name, 'object');
      return visitStruct(t.members, v, name);
    case 'alternate': {
      // The branch is chosen by the JSON type, as QEMU's alternate visitor does.
      const branch = t.branches.find((b) => acceptsJsonType(b, v));
      if (!branch) throw typeError(name, t.name);
      return visit(branch, v, name);
    }
  }
}

function acceptsJsonType(t: TypeSpec, v: JsonValue): boolean {
  switch (t.kind) {
    case 'int': case 'uint64': case 'number':
      return typeof v === 'number' || typeof v === 'bigint' || v instanceof JsonFloat;
    case 'str': case 'enum': return typeof v === 'string' || v instanceof RawString;
    case 'bool': return typeof v === 'boolean';
    case 'list': return Array.isArray(v);
    case 'struct': return v instanceof Map;
    default: return true;
  }
}
