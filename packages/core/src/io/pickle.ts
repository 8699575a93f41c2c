/**
 * A restricted pickle virtual machine (protocols 2–5 as `torch.save` and Python write them). It never
 * runs code: every GLOBAL / STACK_GLOBAL is resolved through the caller's `resolveGlobal`, which
 * returns an allowed callable or throws; REDUCE calls only such callables; BUILD only applies state to
 * objects the caller accepts; INST, OBJ, NEWOBJ, EXT1/2/4 and out-of-band buffers are refused. This is
 * the JavaScript counterpart of `torch.load(weights_only=True)`'s unpickler.
 *
 * Python values map to: None → null, bool → boolean, int → number (bigint beyond ±2^53), float →
 * number, str → string, bytes → Uint8Array, list → Array, tuple → `PickleTuple`, dict → Map.
 */
import { TorchCheckpointError } from './zip.js';

/** A Python tuple (kept apart from lists so callers can check argument shapes). */
export class PickleTuple {
  constructor(readonly items: PickleValue[]) {}
}

/** An allowed callable, as returned by `resolveGlobal`. */
export interface PickleCallable {
  /** `module.name`, for error messages. */
  readonly qualifiedName: string;
  call(args: PickleValue[]): PickleValue;
  /** BUILD on an object this callable made; absent: BUILD is refused. */
  build?(object: PickleValue, state: PickleValue): void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- opaque objects made by allowed callables
export type PickleValue = null | boolean | number | bigint | string | Uint8Array | PickleValue[] | PickleTuple | Map<any, PickleValue> | PickleCallable | object;

export interface UnpickleOptions {
  /** The archive entry being read (e.g. `archive/data.pkl`), named in every error. */
  source: string;
  /** Resolve `module.name` to an allowed callable, or throw. */
  resolveGlobal(module: string, name: string): PickleCallable;
  /** Resolve a persistent id (BINPERSID), or throw. */
  persistentLoad(pid: PickleValue): PickleValue;
}

function isCallable(value: unknown): value is PickleCallable {
  return typeof value === 'object' && value !== null && typeof (value as PickleCallable).call === 'function' && typeof (value as PickleCallable).qualifiedName === 'string';
}

/** Opcodes refused outright, by byte, with their pickle names. */
const REFUSED: ReadonlyMap<number, string> = new Map([
  [0x69, 'INST'], [0x6f, 'OBJ'], [0x81, 'NEWOBJ'], [0x92, 'NEWOBJ_EX'], [0x82, 'EXT1'], [0x83, 'EXT2'], [0x84, 'EXT4'],
  [0x50, 'PERSID'], [0x96, 'BYTEARRAY8'], [0x97, 'NEXT_BUFFER'], [0x98, 'READONLY_BUFFER'],
]);

/** Run a pickle program in `bytes`; returns the value STOP leaves. Throws `TorchCheckpointError`. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): PickleValue {
  const { source } = options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  const stack: PickleValue[] = [];
  const builders = new WeakMap<object, PickleCallable>();
  const marks: number[] = [];
  const memo = new Map<number, PickleValue>();
  let p = 0;
  let op = 0;
  let opAt = 0;

  const fail = (message: string): TorchCheckpointError =>
    new TorchCheckpointError(`${source}: ${message} (opcode 0x${op.toString(16).padStart(2, '0')} at byte ${opAt})`, source);
  const need = (n: number): number => {
    if (!Number.isSafeInteger(n) || n < 0 || p + n > bytes.length) throw fail(`truncated pickle: ${n} more bytes needed at byte ${p} of ${bytes.length}`);
    const at = p;
    p += n;
    return at;
  };
  const u8 = (): number => view.getUint8(need(1));
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`length ${v} is too large`);
    return Number(v);
  };
  const raw = (n: number): Uint8Array => bytes.subarray(need(n), p);
  const line = (): string => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw fail('truncated pickle: newline-terminated argument never ends');
    const text = latin1.decode(bytes.subarray(p, end));
    p = end + 1;
    return text;
  };
  const text = (n: number): string => {
    try { return utf8.decode(raw(n)); } catch (error) {
      if (error instanceof TorchCheckpointError) throw error;
      throw fail('string is not valid UTF-8');
    }
  };
  const pop = (): PickleValue => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) throw fail('stack underflow');
    return stack.pop()!;
  };
  const top = (): PickleValue => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) throw fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): PickleValue[] => {
    const at = marks.pop();
    if (at === undefined) throw fail('stack underflow: no MARK');
    return stack.splice(at);
  };
  const memoGet = (key: number): PickleValue => {
    if (!memo.has(key)) throw fail(`memo key ${key} was never stored`);
    return memo.get(key)!;
  };
  const setItems = (dict: PickleValue, items: PickleValue[]): void => {
    if (!(dict instanceof Map)) throw fail('SETITEM(S) on something that is not a dict');
    if (items.length % 2 !== 0) throw fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
  };
  const append = (list: PickleValue, items: PickleValue[]): void => {
    if (!Array.isArray(list)) throw fail('APPEND(S) on something that is not a list');
    list.push(...items);
  };
  const global = (module: string, name: string): PickleCallable => options.resolveGlobal(module, name);

  while (true) {
    if (p >= bytes.length) throw fail('truncated pickle: no STOP opcode');
    opAt = p;
    op = bytes[p++];
    switch (op) {
      case 0x80: { const proto = u8(); if (proto > 5) throw fail(`pickle protocol ${proto} is not supported (0–5)`); break; } // PROTO
      case 0x95: u64(); break; // FRAME: a length hint only
      case 0x2e: { // STOP
        const value = pop();
        return value;
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(new PickleTuple([])); break; // EMPTY_TUPLE
      case 0x74: stack.push(new PickleTuple(popMark())); break; // TUPLE
      case 0x85: { const a = pop(); stack.push(new PickleTuple([a])); break; } // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(new PickleTuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(new PickleTuple([a, b, c])); break; } // TUPLE3
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { const d = new Map(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x70: { const key = Number.parseInt(line(), 10); if (!Number.isSafeInteger(key)) throw fail('bad PUT key'); memo.set(key, top()); break; } // PUT
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x67: { const key = Number.parseInt(line(), 10); if (!Number.isSafeInteger(key)) throw fail('bad GET key'); stack.push(memoGet(key)); break; } // GET
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(view.getInt32(need(4), true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: case 0x8b: { // LONG1, LONG4: little-endian two's complement
        const n = op === 0x8a ? u8() : u32();
        const digits = raw(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(digits[i]);
        if (n > 0 && digits[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x58: stack.push(text(u32())); break; // BINUNICODE
      case 0x8c: stack.push(text(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(text(u64())); break; // BINUNICODE8
      case 0x54: stack.push(latin1.decode(raw(u32()))); break; // BINSTRING
      case 0x55: stack.push(latin1.decode(raw(u8()))); break; // SHORT_BINSTRING
      case 0x42: stack.push(raw(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(raw(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(raw(u64()).slice()); break; // BINBYTES8
      case 0x63: { const module = line(); const name = line(); stack.push(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop(); const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail('STACK_GLOBAL needs two strings');
        stack.push(global(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(); const callable = pop();
        if (!isCallable(callable)) throw fail('REDUCE of something that is not an allowed global');
        if (!(args instanceof PickleTuple)) throw fail(`REDUCE of ${callable.qualifiedName} without an argument tuple`);
        const made = callable.call(args.items);
        // Remember which callable made each object so BUILD can ask it.
        if (typeof made === 'object' && made !== null) builders.set(made, callable);
        stack.push(made);
        break;
      }
      case 0x62: { // BUILD
        const state = pop(); const object = top();
        const maker = builders.get(object as object);
        if (!maker?.build) throw fail(`BUILD on an object of ${maker ? maker.qualifiedName : 'an unknown type'} is not allowed`);
        maker.build(object, state);
        break;
      }
      case 0x51: stack.push(options.persistentLoad(pop())); break; // BINPERSID
      default: {
        const refused = REFUSED.get(op);
        if (refused) throw fail(`opcode ${refused} is not allowed: only tensors, storages and ordered dicts can be loaded`);
        throw fail('unknown or unsupported pickle opcode');
      }
    }
  }
}
