// The kv service's line protocol (one request per line, one reply line each), shared by the guest's
// server and the client in kv-client.ts:
//   PING              -> PONG
//   SET <key> <value> -> OK                 (value: the rest of the line, may contain spaces)
//   GET <key>         -> VALUE <value> | NOT_FOUND   (the built-in keys "i<n>" hold binary
//                                                      values, sent in base64)
//   DEL <key>         -> DELETED | NOT_FOUND
//   STATS             -> STATS <json>
// Errors: ERR <reason>. Keys are 1..64 bytes of UTF-8 without spaces or control characters; values
// at most 416 bytes without newlines (one 512-byte record in guest memory holds both).

export const KV_MAX_KEY_BYTES = 64;
export const KV_MAX_VALUE_BYTES = 416;

export function kvKeyProblem(key: string): string | null {
  if (key.length === 0) return 'empty key';
  if (Buffer.byteLength(key, 'utf8') > KV_MAX_KEY_BYTES) return `key longer than ${KV_MAX_KEY_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(key)) return 'key has a space or control character';
  return null;
}

export function kvValueProblem(value: string): string | null {
  if (Buffer.byteLength(value, 'utf8') > KV_MAX_VALUE_BYTES) return `value longer than ${KV_MAX_VALUE_BYTES} bytes`;
  if (/[\r\n]/.test(value)) return 'value has a newline';
  return null;
}
