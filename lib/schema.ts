/**
 * The declarative description of argument and return types, written once from
 * qga-qapi-schema.json (QAPI notation) and used by the dispatcher to validate requests
 * before any handler runs.
 */
export type TypeSpec =
  | { kind: 'int' }            // QAPI 'int': int64
  | { kind: 'uint64' }
  | { kind: 'number' }         // QAPI 'number': double (ints accepted)
  | { kind: 'str' }
  | { kind: 'bool' }
  | { kind: 'any' }
  | { kind: 'list'; of: TypeSpec }
  | { kind: 'enum'; name: string; values: readonly string[] }
  | { kind: 'struct'; name: string; members: readonly Member[] }
  | { kind: 'alternate'; name: string; branches: readonly TypeSpec[] };

export interface Member {
  name: string;
  type: TypeSpec;
  optional?: boolean;
}

export const T = {
  int: { kind: 'int' } as TypeSpec,
  uint64: { kind: 'uint64' } as TypeSpec,
  number: { kind: 'number' } as TypeSpec,
  str: { kind: 'str' } as TypeSpec,
  bool: { kind: 'bool' } as TypeSpec,
  any: { kind: 'any' } as TypeSpec,
  list: (of: TypeSpec): TypeSpec => ({ kind: 'list', of }),
  enum: (name: string, values: readonly string[]): TypeSpec => ({ kind: 'enum', name, values }),
  struct: (name: string, members: Record<string, TypeSpec>): TypeSpec => ({ kind: 'struct', name, members: membersOf(members) }),
  alternate: (name: string, branches: readonly TypeSpec[]): TypeSpec => ({ kind: 'alternate', name, branches }),
};

/** `{ 'name': T.str, '*mode': T.str }` in QAPI's own notation: a leading '*' marks optional. */
export function membersOf(members: Record<string, TypeSpec>): Member[] {
  return Object.entries(members).map(([key, type]) =>
    key.startsWith('*') ? { name: key.slice(1), type, optional: true } : { name: key, type });
}
